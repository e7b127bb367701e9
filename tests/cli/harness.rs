//! A fresh directory per test, the binary under test, and small helpers.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

use crate::backend::Backend;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    _watchdog: Watchdog,
}

/// How long one test may hold an [`Env`]: past it the test has hung, and the
/// whole run stops with the test's name instead of eating CI's time.
/// `CACHIER_TEST_TIMEOUT` (seconds) overrides it.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Stops the test process, naming the test, unless dropped in time.
struct Watchdog(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

impl Watchdog {
    fn start() -> Watchdog {
        let name = std::thread::current()
            .name()
            .unwrap_or("an unnamed test")
            .to_string();
        let limit = std::env::var("CACHIER_TEST_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(TEST_TIMEOUT, Duration::from_secs);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if rx.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                // Not eprintln!: the test harness captures that, and would
                // lose it with the process.
                let _ = writeln!(
                    std::io::stderr(),
                    "test {name} hung: still running after {limit:?}; stopping the suite"
                );
                std::process::exit(101);
            }
        });
        Watchdog(tx)
    }
}

/// Give a spawned cachier the default dispositions of the signals it
/// forwards, and an empty signal mask, whatever this test process inherited
/// (`nohup`, a background job and some CI runners ignore INT and QUIT).
pub fn default_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGTERM,
                libc::SIGHUP,
                libc::SIGPIPE,
            ] {
                libc::signal(sig, libc::SIG_DFL);
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
}

impl Env {
    /// A fresh directory, and a fresh store of `backend` (whose server the
    /// caller checked with [`Env::try_new`] or [`Backend::available`]).
    pub fn new(backend: Backend) -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
            backend,
            _watchdog: Watchdog::start(),
        };
        backend.set_up(env.dir.path());
        env
    }

    /// Like [`Env::new`], or `None` (after a loud message) when the
    /// backend's server is missing outside CI; under `CI=true` it fails.
    pub fn try_new(backend: Backend) -> Option<Env> {
        backend.available().then(|| Env::new(backend))
    }

    pub fn file() -> Env {
        Env::new(Backend::File)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `cachier ARGS` with a clean environment pointing at this test's cache,
    /// and at its own config file, `config.toml` (absent unless a test writes it).
    pub fn cachier(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("cachier").unwrap();
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        default_signals(&mut cmd);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CACHIER_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("NO_COLOR");
        cmd.env("CACHIER_CONFIG", self.path("config.toml"));
        // The per-user hash cache of `--input` files, kept in the test's dir.
        cmd.env("XDG_CACHE_HOME", self.path("xdg-cache"));
        // The runtime dir (the outage breaker's marks), the test's own.
        cmd.env("XDG_RUNTIME_DIR", self.path("run"));
        // Server lookups go straight to the server, unless the backend
        // (a pooled one) says otherwise.
        cmd.env("CACHIER_POOL", "0");
        // No daemon watches `--input` trees unless a test asks for it.
        cmd.env("CACHIER_WATCH", "0");
        for (k, v) in self.backend.env(self.dir.path()) {
            cmd.env(k, v);
        }
        cmd
    }

    /// `cachier run ARGS -- sh -c SCRIPT`: the script sees `$COUNT`, a file
    /// that gets one line per execution.
    pub fn run_sh(&self, flags: &[&str], script: &str) -> Command {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        let mut cmd = self.cachier(&args);
        cmd.env("COUNT", self.path("count"));
        cmd
    }

    /// How many times a `run_sh` script executed.
    pub fn runs(&self) -> usize {
        std::fs::read_to_string(self.path("count")).map_or(0, |s| s.lines().count())
    }

    /// What `cachier ARGS` prints on stdout, which must succeed.
    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.cachier(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `cachier ARGS --json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cachier(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// One counter of `stats --json` for namespace `ns` (or `total`).
    pub fn stat(&self, ns: &str, field: &str) -> u64 {
        let stats = self.json(&["stats", "--json"]);
        let row = if ns == "total" {
            &stats["total"]
        } else {
            &stats["namespaces"][ns]
        };
        row[field].as_u64().unwrap_or(0)
    }

    pub fn count_entries(&self) -> usize {
        self.backend.count_entries(self.dir.path())
    }
}

impl Drop for Env {
    /// Scripts record their pid in `$COUNT`; one orphaned by a killed owner
    /// must not outlive the test (its `go` file vanishes with the temp dir),
    /// nor may anything else still running in the test dir.
    fn drop(&mut self) {
        let pids = std::fs::read_to_string(self.path("count")).unwrap_or_default();
        let mut doomed: Vec<i32> = pids
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .collect();
        // A test that failed half-way leaves its cachier processes (they run
        // in the test dir) to start scripts nobody counts: those go too.
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                    continue;
                };
                if std::fs::read_link(p.path().join("cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(self.dir.path()))
                {
                    doomed.push(pid);
                }
            }
        }
        for pid in doomed {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        self.backend.tear_down(self.dir.path());
    }
}

/// A script that counts itself, then prints `text` on stdout.
pub fn counted(text: &str) -> String {
    format!("echo $$ >> \"$COUNT\"; printf '%s' '{text}'")
}

/// A script fragment that blocks until the file `go` exists in the test dir.
pub fn until_go() -> &'static str {
    "while [ ! -e go ]; do sleep 0.01; done"
}

/// Wait (bounded) until `cond` holds; panics with `what` if it never does.
pub fn await_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Spawn with stderr piped; the returned receiver gets each stderr line.
pub fn spawn_watching_stderr(mut cmd: Command) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Block until a line containing `needle` arrives (bounded).
pub fn expect_line(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no stderr line containing {needle:?}: {e}"),
        }
    }
}

pub fn touch(path: &Path) {
    std::fs::write(path, b"").unwrap();
}

/// Run `cmd` to the end, failing the test if it is still running after
/// `limit` (it is killed first): a deadline that proves there is no hang.
/// Returns the output and how long it ran.
pub fn output_within(mut cmd: Command, limit: Duration) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_within(child, limit);
    (out, started.elapsed())
}

/// Wait for `child` (reading what it prints on the pipes it has), failing
/// the test if it is still running after `limit` (it is killed first).
pub fn wait_within(mut child: Child, limit: Duration) -> std::process::Output {
    use std::io::Read;
    let deadline = Instant::now() + limit;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}
