//! Crash consistency and stress, on every backend: what both harnesses
//! share (a seeded RNG, runs with deadlines, reading `-v` lines around the
//! command's own stderr, the figures they report).
//!
//! The short runs are ordinary tests. `bench/faults` runs the same tests
//! longer through these variables: `FAULTS_SEED` (replay a run: failures
//! print theirs), `FAULTS_KILLS_LOCAL`/`FAULTS_KILLS_SERVER` (kills per
//! backend), `FAULTS_WORKERS_LOCAL`/`FAULTS_WORKERS_SERVER` (rounds run at
//! once), `FAULTS_STRESS_PROCS`/`FAULTS_STRESS_KEYS`, and
//! `FAULTS_REPORT` (a file each test appends its figures to, one TSV row).
mod crash;
mod stress;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::backend::Backend;

/// One test per backend, named after it, calling `$case(&env, "name")`.
macro_rules! per_backend {
    ($case:ident: $($name:ident = $backend:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            if let Some(env) = crate::harness::Env::try_new(crate::backend::Backend::$backend) {
                $case(&env, stringify!($name));
            }
        }
    )*};
}
pub(crate) use per_backend;

/// Whether `backend` lives on a server (fewer, slower rounds).
pub fn is_server(backend: Backend) -> bool {
    matches!(
        backend,
        Backend::Postgres | Backend::Redis | Backend::RedisCluster | Backend::Mongo | Backend::S3
    )
}

/// How long a dead owner may hold its key on `backend` (SPEC §1.5): at once
/// where a lock dies with its process, 10 s where a lease must lapse.
pub fn dead_owner_bound(backend: Backend) -> Duration {
    match backend {
        Backend::Redis
        | Backend::RedisCluster
        | Backend::Mongo
        | Backend::S3
        | Backend::Stack
        | Backend::MemoryS3 => Duration::from_secs(10),
        _ => Duration::ZERO,
    }
}

/// A number from the environment, or `default`.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `FAULTS_SEED`, or a fresh one (printed by whoever fails).
pub fn seed() -> u64 {
    std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        })
}

/// SplitMix64: small, seeded, the same sequence everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// A finished run.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A spawned process we may kill, and reap with a deadline.
pub struct Spawned {
    pub child: Child,
    /// Readable once the process has ended: waits sleep in `poll`.
    pidfd: OwnedFd,
    outs: Option<[Receiver<Vec<u8>>; 2]>,
}

impl Spawned {
    /// Spawn `cmd`, its output captured (read as it comes) or discarded.
    pub fn new(mut cmd: Command, capture: bool) -> Spawned {
        let pipe = || {
            if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        let mut child = cmd.stdout(pipe()).stderr(pipe()).spawn().unwrap();
        let pidfd = pidfd_open(Pid::from_child(&child), PidfdFlags::empty()).unwrap();
        let outs = capture.then(|| {
            [
                drain(child.stdout.take().unwrap()),
                drain(child.stderr.take().unwrap()),
            ]
        });
        Spawned { child, pidfd, outs }
    }

    /// Its exit status if it ended by `deadline`; else it is still running.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let left = Timespec::try_from(left).unwrap();
            // Interrupted or not, the loop looks again.
            let _ = poll(&mut [PollFd::new(&self.pidfd, PollFlags::IN)], Some(&left));
        }
    }

    /// SIGKILL it (if it still runs) and reap it.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.wait_until(Instant::now() + Duration::from_secs(10))
            .expect("a SIGKILLed process is reaped within 10 s")
    }

    /// Its output, once it ended with `status`; `None` if the pipes stay
    /// open past `deadline` (something it started still holds them).
    pub fn finish(self, status: ExitStatus, deadline: Instant) -> Option<Ran> {
        let [out, err] = self.outs.expect("a captured run");
        let left = || deadline.saturating_duration_since(Instant::now());
        let stdout = out.recv_timeout(left()).ok()?;
        let stderr = err.recv_timeout(left()).ok()?;
        Some(Ran {
            code: status.code(),
            stdout,
            stderr,
        })
    }
}

fn drain(mut from: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}

/// Run `cmd` to its end within `limit`, else kill it: `None`.
pub fn run_within(cmd: Command, limit: Duration) -> Option<Ran> {
    let deadline = Instant::now() + limit;
    let mut run = Spawned::new(cmd, true);
    match run.wait_until(deadline) {
        Some(status) => run.finish(status, deadline + Duration::from_secs(5)),
        None => {
            run.kill();
            None
        }
    }
}

/// What `cachier run -v` wrote on stderr, split around the command's own
/// stderr `expected`: cachier's lines before it (warnings, "waiting for")
/// and its one line after it ("hit ..." or "miss ..."). `None` when the
/// command's bytes are not there exactly.
pub fn around(stderr: &[u8], expected: &[u8]) -> Option<(Vec<String>, String)> {
    const TAG: &[u8] = b"cachier: ";
    let last = stderr.windows(TAG.len()).rposition(|w| w == TAG)?;
    let (mut body, tail) = stderr.split_at(last);
    let tail = std::str::from_utf8(tail).ok()?;
    if tail.find('\n')? != tail.len() - 1 {
        return None;
    }
    let mut before = Vec::new();
    while body.len() > expected.len() && body.starts_with(TAG) {
        let end = body.iter().position(|&b| b == b'\n')? + 1;
        before.push(String::from_utf8_lossy(&body[..end - 1]).into_owned());
        body = &body[end..];
    }
    (body == expected).then(|| (before, tail.trim_end().to_string()))
}

/// Print a test's figures and append them to `FAULTS_REPORT`, if set.
pub fn report(row: &[String]) {
    let line = row.join("\t");
    let _ = writeln!(std::io::stderr(), "figures: {line}");
    if let Ok(path) = std::env::var("FAULTS_REPORT")
        && let Ok(mut file) = std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

/// Median and maximum of `ms`, in ms (0 when empty).
pub fn median_max(ms: &mut [u64]) -> (u64, u64) {
    ms.sort_unstable();
    (
        ms.get(ms.len() / 2).copied().unwrap_or(0),
        ms.last().copied().unwrap_or(0),
    )
}

#[test]
fn around_finds_the_command_bytes_between_cachier_lines() {
    let s = b"cachier: warning: x\ncachier: waiting for k\nab\x00ccachier: hit k\n";
    let (before, after) = around(s, b"ab\x00c").unwrap();
    assert_eq!(before, ["cachier: warning: x", "cachier: waiting for k"]);
    assert_eq!(after, "cachier: hit k");
    assert_eq!(
        around(b"cachier: miss k\n", b""),
        Some((vec![], "cachier: miss k".into()))
    );
    assert_eq!(around(b"abdcachier: hit k\n", b"abc"), None);
    assert_eq!(around(b"abc", b"abc"), None);
}
