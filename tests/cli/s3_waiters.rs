//! S3 waiters of one machine on one key: one of them polls the bucket (the
//! load of one waiter, not of N, counted at a loopback front), and when
//! that poller is SIGKILLed another takes over, so every waiter is still
//! served before its deadline; a waited hit is counted in one write.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, s3_delete, s3_get, s3_names, s3_put, s3_url};
use crate::harness::*;
use crate::s3_front::{Answer, front_answering};

const SCRIPT: &str = "echo $$ >> \"$COUNT\"; echo out";
const WAITERS: usize = 6;

/// A live claim on the key of [`SCRIPT`] by "another machine", with no
/// entry under it; the stored entry's object and name, and a guard that
/// keeps the claim fresh until dropped.
struct HeldClaim {
    entry: String,
    object: Vec<u8>,
    held: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl HeldClaim {
    fn new(env: &Env) -> HeldClaim {
        let dir = env.dir.path().to_path_buf();
        env.run_sh(&[], SCRIPT).assert().code(0).stdout("out\n");
        let entry = s3_names(&dir, "cachier/e/").remove(0);
        let object = s3_get(&dir, &entry);
        s3_delete(&dir, &entry);
        let claim = entry.replace("cachier/e/", "cachier/claim/");
        // Held before any waiter starts, then kept fresh.
        s3_put(&dir, &claim, b"elsewhere\t1\t00000000000000ff");
        let held = Arc::new(AtomicBool::new(true));
        let renewer = {
            let held = held.clone();
            std::thread::spawn(move || {
                while held.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(500));
                    s3_put(&dir, &claim, b"elsewhere\t1\t00000000000000ff");
                }
            })
        };
        HeldClaim {
            entry,
            object,
            held,
            renewer: Some(renewer),
        }
    }

    /// The owner's result lands (its claim still held).
    fn store(&self, env: &Env) {
        s3_put(env.dir.path(), &self.entry, &self.object);
    }
}

impl Drop for HeldClaim {
    fn drop(&mut self) {
        self.held.store(false, Ordering::SeqCst);
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
    }
}

/// Start `n` waiters on the held key through `endpoint`, each giving up
/// after 60 s; returns once each says it waits.
fn start_waiters(env: &Env, endpoint: &str, n: usize) -> Vec<Child> {
    (0..n)
        .map(|_| {
            let mut cmd = env.run_sh(&["--verbose", "--wait-for-calc-timeout", "60s"], SCRIPT);
            cmd.env("CACHIER_S3_ENDPOINT", endpoint);
            let (child, lines) = spawn_watching_stderr(cmd);
            expect_line(&lines, "waiting for");
            child
        })
        .collect()
}

/// Every waiter replays the stored result (nobody ran the command again,
/// nobody gave up at its deadline), within 30 s.
fn all_served(env: &Env, waiters: Vec<Child>) {
    for w in waiters {
        let out = wait_within(w, Duration::from_secs(30));
        assert_eq!(
            (out.status.code(), &out.stdout[..]),
            (Some(0), &b"out\n"[..]),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(env.runs(), 1, "every waiter replayed the first run's entry");
}

/// The wait file of the test's one waited key.
fn wait_file(env: &Env) -> PathBuf {
    let dir = env.path("cache/s3-waits");
    let mut found = None;
    await_until("a waiter makes its wait file", || {
        found = std::fs::read_dir(&dir)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path());
        found.is_some()
    });
    found.unwrap_or_default()
}

/// The pid holding an exclusive flock on `path`, per /proc/locks.
fn locker(path: &Path) -> Option<i32> {
    let ino = std::fs::metadata(path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let ours =
            f.len() > 5 && f[1] == "FLOCK" && f[3] == "WRITE" && f[5].ends_with(&format!(":{ino}"));
        ours.then(|| f[4].parse().ok()).flatten()
    })
}

#[test]
fn waiters_on_one_machine_poll_the_bucket_as_one() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let claim = HeldClaim::new(&env);
    let target = s3_url().unwrap().trim_start_matches("http://").to_string();
    let heads = Arc::new(AtomicUsize::new(0));
    let counted = heads.clone();
    let front = front_answering(500, "Unused", Some(target), &[], move |_, line| {
        if line.starts_with("HEAD ") && line.contains("/cachier/e/") {
            counted.fetch_add(1, Ordering::SeqCst);
        }
        Answer::Forward
    });
    let waiters = start_waiters(&env, &front.url, WAITERS);
    // Two seconds of waiting, all of them settled in.
    std::thread::sleep(Duration::from_millis(300));
    let (before, began) = (heads.load(Ordering::SeqCst), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let polls = heads.load(Ordering::SeqCst) - before;
    let secs = began.elapsed().as_secs_f64();
    claim.store(&env);
    all_served(&env, waiters);
    // One poller HEADs the entry at most every 75 ms (100 ms less a
    // quarter of jitter): 14 a second. Each of 6 pollers would send 6 times that.
    let one = (secs * 14.0).ceil() as usize + 2;
    assert!(
        polls <= one,
        "{polls} HEADs of the entry in {secs:.1} s from {WAITERS} waiters: at most {one} from one"
    );
    assert!(polls > 0, "nobody polled");
}

#[test]
fn a_killed_poller_is_replaced_and_every_waiter_is_served() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let claim = HeldClaim::new(&env);
    let mut waiters = start_waiters(&env, &s3_url().unwrap(), WAITERS);
    let file = wait_file(&env);
    let mut poller = None;
    await_until("a waiter polls", || {
        poller = locker(&file);
        poller.is_some()
    });
    let poller = poller.unwrap_or_default();
    let i = waiters
        .iter()
        .position(|w| w.id() as i32 == poller)
        .expect("the poller is one of the waiters");
    let mut killed = waiters.remove(i);
    killed.kill().unwrap(); // SIGKILL
    let _ = killed.wait();
    // Another waiter takes the lock over and polls.
    await_until("another waiter polls", || {
        locker(&file).is_some_and(|p| p != poller)
    });
    claim.store(&env);
    all_served(&env, waiters);
}

#[test]
fn a_waited_hit_is_counted_in_one_write() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let claim = HeldClaim::new(&env);
    let deltas = || s3_names(env.dir.path(), "cachier/counts/d/").len();
    let before = deltas();
    let waiter = start_waiters(&env, &s3_url().unwrap(), 1);
    claim.store(&env);
    all_served(&env, waiter);
    assert_eq!(
        deltas() - before,
        1,
        "one delta object for the hit and the wait"
    );
    assert_eq!((env.stat("sh", "hits"), env.stat("sh", "waits")), (1, 1));
}
