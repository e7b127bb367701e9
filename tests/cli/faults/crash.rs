//! Crash consistency (SPEC §7): SIGKILL `cachier run` at a random moment
//! of a miss whose command writes 0 B – 8 MiB to each stream, interleaved,
//! and exits with a stored or an unstored code; then the same command line
//! must give exactly the command's bytes and code, within the backend's
//! bound for a dead owner, and a third run must be a hit (or, for an
//! unstored code, a fresh run).
//!
//! Counted per backend: kills, wrong (any byte or code off), stuck (a run
//! blocked past the bound), no hit (a third run that ran the command
//! again), warned (a rerun that printed a cache warning: allowed, shown),
//! and recovery: time from the kill to the end of the next good run.
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Rng, Spawned, around, dead_owner_bound, is_server, knob, median_max, per_backend};
use crate::harness::Env;

const WRITER: &str = include_str!("writer.py");
/// Codes the command exits with: 0 and 3 are stored, 1 and 7 are not.
const CODES: [i32; 6] = [0, 0, 0, 3, 1, 7];
const STORED: &str = "0,3";
const MAX_STREAM: f64 = (8 << 20) as f64;

per_backend!(crash: file = File, postgres = Postgres, memory = Memory);
#[cfg(feature = "sqlite")]
per_backend!(crash: sqlite = Sqlite);
#[cfg(feature = "redis")]
per_backend!(crash: redis = Redis);
#[cfg(feature = "mongo")]
per_backend!(crash: mongo = Mongo);
#[cfg(feature = "s3")]
per_backend!(crash: s3 = S3);

#[derive(Default)]
struct Figures {
    kills: usize,
    attempts: usize,
    wrong: Vec<String>,
    stuck: Vec<String>,
    no_hit: Vec<String>,
    warned: usize,
    recovery_ms: Vec<u64>,
    /// cachier's own time on a miss beyond the command's (EWMA, ms): with
    /// the command's time it says how long a miss lasts, where to aim kills.
    overhead_ms: f64,
}

/// One command line: its seed, stream sizes and exit code.
struct Case {
    seed: u64,
    sizes: [usize; 2],
    code: i32,
}

impl Case {
    fn random(rng: &mut Rng) -> Case {
        let mut size = || {
            if rng.below(7) == 0 {
                0
            } else {
                MAX_STREAM.powf(rng.unit()) as usize
            }
        };
        let sizes = [size(), size()];
        Case {
            seed: rng.next(),
            sizes,
            code: CODES[rng.below(CODES.len() as u64) as usize],
        }
    }

    fn argv(&self, python: &str) -> Vec<String> {
        let [out, err] = self.sizes;
        let (seed, code) = (self.seed, self.code);
        [python, "writer.py"]
            .map(String::from)
            .into_iter()
            .chain([seed, out as u64, err as u64, code as u64].map(|n| n.to_string()))
            .collect()
    }

    fn stored(&self) -> bool {
        self.code == 0 || self.code == 3
    }
}

fn crash(env: &Env, name: &str) {
    let server = is_server(env.backend);
    let (kills, workers) = if server {
        (
            knob("FAULTS_KILLS_SERVER", 5),
            knob("FAULTS_WORKERS_SERVER", 5),
        )
    } else {
        (
            knob("FAULTS_KILLS_LOCAL", 20),
            knob("FAULTS_WORKERS_LOCAL", 2),
        )
    };
    let seed = super::seed();
    std::fs::write(env.path("writer.py"), WRITER).unwrap();
    let python = python3();
    let figures = Mutex::new(Figures {
        overhead_ms: 30.0,
        ..Figures::default()
    });
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..workers as u64 {
            let (figures, python) = (&figures, &python);
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ w.wrapping_mul(0x2545_f491_4f6c_dd1d));
                // Some runs end before their kill: give up on a backend
                // where nearly all do rather than loop for ever.
                while {
                    let f = figures.lock().unwrap();
                    f.kills < kills && f.attempts < 4 * kills + 8
                } {
                    once(env, &Case::random(&mut rng), python, figures);
                }
            });
        }
    });
    let f = figures.into_inner().unwrap();
    let mut recovery = f.recovery_ms.clone();
    let (median, max) = median_max(&mut recovery);
    super::report(&[
        "crash".into(),
        name.into(),
        f.kills.to_string(),
        f.wrong.len().to_string(),
        f.stuck.len().to_string(),
        f.no_hit.len().to_string(),
        f.warned.to_string(),
        median.to_string(),
        max.to_string(),
        started.elapsed().as_secs().to_string(),
    ]);
    let replay = format!(
        "seed {seed}; replay: FAULTS_SEED={seed} cargo test --test cli faults::crash::{name}"
    );
    assert!(f.kills >= kills, "only {} kills ({replay})", f.kills);
    for (what, list) in [
        ("wrong", &f.wrong),
        ("stuck", &f.stuck),
        ("no hit", &f.no_hit),
    ] {
        assert!(list.is_empty(), "{name}: {what}: {list:#?} ({replay})");
    }
}

/// The interpreter `python3` runs: a shim on PATH (pyenv's) would cost a
/// shell or two per run, and blur where kills land.
fn python3() -> String {
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", "import sys; print(sys.executable)"]);
    let ran = super::run_within(cmd, Duration::from_secs(30)).expect("python3 answers");
    String::from_utf8(ran.stdout).unwrap().trim().to_string()
}

/// One round: the command run directly, then under cachier killed at a
/// random moment, then again (checked, timed) and a third time (a hit).
fn once(env: &Env, case: &Case, python: &str, figures: &Mutex<Figures>) {
    let argv = case.argv(python);
    let count = env.path(&format!("runs.{}", case.seed));
    let runs = || std::fs::read_to_string(&count).map_or(0, |s| s.lines().count());
    let (want, direct) = run_direct(env, &argv);
    assert_eq!(want.code, Some(case.code), "the writer exits as told");
    let direct_ms = direct.as_secs_f64() * 1e3;
    let what = format!("{} (sizes {:?})", argv[2..].join(" "), case.sizes);

    let aim = (direct_ms + figures.lock().unwrap().overhead_ms) * 1.2;
    let delay = Duration::from_secs_f64(aim * Rng::new(case.seed).unit() / 1e3);
    let mut victim = Spawned::new(cachier(env, &argv, &count), false);
    let ended = victim.wait_until(Instant::now() + delay);
    let killed = ended.is_none() && victim.kill().code().is_none();
    let killed_at = Instant::now();
    {
        let mut f = figures.lock().unwrap();
        f.attempts += 1;
        f.kills += usize::from(killed);
    }

    // The rerun, at once (the killed run's command may still be dying):
    // exactly the command's bytes and code, within the bound.
    let bound = dead_owner_bound(env.backend) + Duration::from_secs(10) + 3 * direct;
    let Some(rerun) = super::run_within(cachier(env, &argv, &count), bound) else {
        figures
            .lock()
            .unwrap()
            .stuck
            .push(format!("rerun of {what}"));
        return;
    };
    let recovered = killed_at.elapsed();
    {
        let mut f = figures.lock().unwrap();
        let Some((lines, verdict)) = check(&rerun, &want) else {
            f.wrong
                .push(format!("rerun of {what}: {}", differs(&rerun, &want)));
            return;
        };
        if killed {
            f.recovery_ms.push(recovered.as_millis() as u64);
        }
        f.warned += usize::from(lines.iter().any(|l| l.contains("warning:")));
        let waited = lines.iter().any(|l| l.contains("waiting for"));
        if verdict.starts_with("cachier: miss ") && !waited {
            let ms = recovered.as_secs_f64() * 1e3 - direct_ms;
            f.overhead_ms = 0.8 * f.overhead_ms + 0.2 * ms.clamp(0.0, 1e4);
        }
    }

    // The third run: a hit when the code is stored (the command does not
    // run: its count stays), else a fresh run. The killed run's command is
    // gone first, so that its late start is not counted as this run's.
    let needle = format!("writer.py {} ", case.seed);
    await_gone(env, &needle);
    let before = runs();
    let Some(third) = super::run_within(cachier(env, &argv, &count), bound) else {
        figures
            .lock()
            .unwrap()
            .stuck
            .push(format!("third run of {what}"));
        return;
    };
    let mut f = figures.lock().unwrap();
    match check(&third, &want) {
        None => f
            .wrong
            .push(format!("third run of {what}: {}", differs(&third, &want))),
        Some((lines, verdict)) => {
            let hit = verdict.starts_with("cachier: hit ") && runs() == before;
            if hit != case.stored() || !lines.is_empty() {
                f.no_hit
                    .push(format!("third run of {what}: {lines:?} {verdict}"));
            }
        }
    }
}

/// Wait (bounded) until no process in the test dir has `needle` in its
/// command line.
fn await_gone(env: &Env, needle: &str) {
    let dir = env.dir.path();
    crate::harness::await_until("the killed run's command exits", || {
        !std::fs::read_dir("/proc").is_ok_and(|procs| {
            procs.flatten().any(|p| {
                let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                cmdline.contains(needle)
                    && std::fs::read_link(p.path().join("cwd")).is_ok_and(|c| c.starts_with(dir))
            })
        })
    });
}

/// `cachier run -v --cache-exit-codes 0,3 -- ARGV`, its executions
/// counted in `count`.
fn cachier(env: &Env, argv: &[String], count: &std::path::Path) -> std::process::Command {
    let mut args = vec!["run", "-v", "--cache-exit-codes", STORED, "--"];
    args.extend(argv.iter().map(String::as_str));
    let mut cmd = env.cachier(&args);
    cmd.env("COUNT", count);
    cmd
}

/// The command's own bytes and code, and how long it took.
fn run_direct(env: &Env, argv: &[String]) -> (super::Ran, Duration) {
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(env.dir.path())
        .env_remove("COUNT");
    let start = Instant::now();
    let ran = super::run_within(cmd, Duration::from_secs(60)).expect("the writer ends");
    (ran, start.elapsed())
}

/// cachier's lines around the command's stderr, if every byte and the
/// code are the command's.
fn check(got: &super::Ran, want: &super::Ran) -> Option<(Vec<String>, String)> {
    if got.code != want.code || got.stdout != want.stdout {
        return None;
    }
    around(&got.stderr, &want.stderr)
}

fn differs(got: &super::Ran, want: &super::Ran) -> String {
    let tail = String::from_utf8_lossy(&got.stderr[got.stderr.len().saturating_sub(300)..]);
    format!(
        "code {:?} (want {:?}), stdout {} B (want {} B, equal: {}), stderr {} B (want {} B), stderr ends {tail:?}",
        got.code,
        want.code,
        got.stdout.len(),
        want.stdout.len(),
        got.stdout == want.stdout,
        got.stderr.len(),
        want.stderr.len(),
    )
}
