//! Stress (SPEC §0.4): many processes each run every one of a few keys in
//! its own random order, all at once, and then all again. Every run must
//! give its key's exact bytes and code, each key's command must run
//! exactly once over both rounds (its side-effect file gets one line), and
//! the second round is all hits.
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use super::{Rng, around, is_server, knob, per_backend};
use crate::backend::Backend;
use crate::harness::Env;

/// Counts itself in `runs.KEY`, takes a second (so that callers pile up on
/// it even when spawning is slow), then prints its key's lines and exits
/// with its code.
const SCRIPT: &str = r#"echo $$ >> "runs.$1"; sleep 1; printf 'key %s\n' "$1"; seq "$2"; printf 'err %s\n' "$1" >&2; exit "$3""#;

per_backend!(stress: file = File, postgres = Postgres, memory = Memory);
#[cfg(feature = "sqlite")]
per_backend!(stress: sqlite = Sqlite);
#[cfg(feature = "redis")]
per_backend!(stress: redis = Redis);
#[cfg(feature = "mongo")]
per_backend!(stress: mongo = Mongo);
#[cfg(feature = "s3")]
per_backend!(stress: s3 = S3);

/// What key `k` runs and what it must give.
struct Key {
    argv: Vec<String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    code: i32,
}

impl Key {
    fn new(k: usize) -> Key {
        let lines = 1 + k * 300;
        let code = if k % 4 == 3 { 3 } else { 0 };
        let mut stdout = format!("key {k}\n");
        for i in 1..=lines {
            stdout.push_str(&format!("{i}\n"));
        }
        let argv = ["sh", "-c", SCRIPT, "sh"]
            .map(String::from)
            .into_iter()
            .chain([k, lines, code as usize].map(|n| n.to_string()))
            .collect();
        Key {
            argv,
            stdout: stdout.into_bytes(),
            stderr: format!("err {k}\n").into_bytes(),
            code,
        }
    }
}

#[derive(Default)]
struct Tally {
    runs: usize,
    misses: usize,
    /// Runs that waited for another caller's computation.
    waits: usize,
    wrong: Vec<String>,
    stuck: Vec<String>,
}

fn stress(env: &Env, name: &str) {
    // Smaller here, full size (64 x 16 everywhere) in bench/faults: each
    // run of a debug cachier costs ~7 ms of CPU on a local store (2,048 runs
    // at full size), more on a server store, and PostgreSQL's SCRAM login is
    // slow in a debug build. Half the processes still race on every key.
    let (procs, keys) = match env.backend {
        Backend::Postgres => (8, 8),
        b if is_server(b) => (16, 16),
        _ => (32, 16),
    };
    let procs = knob("FAULTS_STRESS_PROCS", procs);
    let keys: Vec<Key> = (0..knob("FAULTS_STRESS_KEYS", keys))
        .map(Key::new)
        .collect();
    let seed = super::seed();
    let started = Instant::now();
    let mut rounds = Vec::new();
    for round in 0..2u64 {
        let tally = Mutex::new(Tally::default());
        let barrier = Barrier::new(procs);
        std::thread::scope(|s| {
            for p in 0..procs as u64 {
                let (keys, tally, barrier) = (&keys, &tally, &barrier);
                s.spawn(move || {
                    let mut rng = Rng::new(seed ^ (p << 1 | round).wrapping_mul(0x9e37_79b9));
                    let mut order: Vec<usize> = (0..keys.len()).collect();
                    rng.shuffle(&mut order);
                    // Every caller starts on the same key, so at least one
                    // race for it is certain (random orders alone can miss
                    // each other: one seed in the suite gave none at all).
                    let shared = (seed % keys.len() as u64) as usize;
                    if let Some(at) = order.iter().position(|&k| k == shared) {
                        order.swap(0, at);
                    }
                    barrier.wait();
                    for k in order {
                        one(env, k, &keys[k], tally);
                    }
                });
            }
        });
        rounds.push(tally.into_inner().unwrap());
    }
    let executions: Vec<usize> = (0..keys.len())
        .map(|k| {
            std::fs::read_to_string(env.path(&format!("runs.{k}"))).map_or(0, |s| s.lines().count())
        })
        .collect();
    let [first, second] = [&rounds[0], &rounds[1]];
    super::report(&[
        "stress".into(),
        name.into(),
        procs.to_string(),
        keys.len().to_string(),
        (first.runs + second.runs).to_string(),
        executions.iter().sum::<usize>().to_string(),
        (first.wrong.len() + second.wrong.len()).to_string(),
        (first.stuck.len() + second.stuck.len()).to_string(),
        first.waits.to_string(),
        second.misses.to_string(),
        started.elapsed().as_secs().to_string(),
    ]);
    let replay = format!(
        "seed {seed}; replay: FAULTS_SEED={seed} cargo test --test cli faults::stress::{name}"
    );
    for round in &rounds {
        assert!(
            round.wrong.is_empty(),
            "wrong: {:#?} ({replay})",
            round.wrong
        );
        assert!(
            round.stuck.is_empty(),
            "stuck: {:#?} ({replay})",
            round.stuck
        );
    }
    assert!(
        executions.iter().all(|&n| n == 1),
        "executions per key: {executions:?} ({replay})"
    );
    assert_eq!(first.misses, keys.len(), "first round misses ({replay})");
    // Callers did race for keys: single-flight was put to the test.
    assert!(first.waits > 0, "nobody waited ({replay})");
    assert_eq!(second.misses, 0, "second round misses ({replay})");
    let hits = 2 * procs * keys.len() - keys.len();
    assert_eq!(
        (env.stat("sh", "misses"), env.stat("sh", "hits")),
        (keys.len() as u64, hits as u64),
        "stats: misses, hits ({replay})"
    );
}

/// Run key `k` once under cachier and check what it gave.
fn one(env: &Env, k: usize, key: &Key, tally: &Mutex<Tally>) {
    let mut args = vec!["run", "-v", "--cache-exit-codes", "0,3", "--"];
    args.extend(key.argv.iter().map(String::as_str));
    let got = super::run_within(env.cachier(&args), Duration::from_secs(60));
    let mut t = tally.lock().unwrap();
    t.runs += 1;
    let Some(got) = got else {
        t.stuck.push(format!("key {k}"));
        return;
    };
    let split = (got.code == Some(key.code) && got.stdout == key.stdout)
        .then(|| around(&got.stderr, &key.stderr))
        .flatten();
    match split {
        Some((before, verdict)) => {
            t.misses += usize::from(verdict.starts_with("cachier: miss "));
            t.waits += usize::from(before.iter().any(|l| l.contains("waiting for")));
        }
        None => t.wrong.push(format!(
            "key {k}: code {:?}, stdout {} B, stderr {:?}",
            got.code,
            got.stdout.len(),
            String::from_utf8_lossy(&got.stderr)
        )),
    }
}
