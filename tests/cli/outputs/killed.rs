//! A real restore killed part-way (SIGKILL: no handler runs, nothing is
//! cleaned up): the user's file is the old one or the new one whole, the
//! next run is served byte-exact, and the temp file the killed restore
//! left behind is never stored and is swept once stale.
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::harness::*;

/// Big enough that writing it takes a while (the restore is caught
/// between creating its temp file and renaming it), incompressible so the
/// archive is as big.
const SIZE: usize = 64 << 20;

const SCRIPT: &str = "echo $$ >> \"$COUNT\"; mkdir -p out; cp src.bin out/big; echo built";

/// `SIZE` bytes no compressor shrinks (xorshift64*).
fn noise() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(SIZE);
    while bytes.len() < SIZE {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        bytes.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    bytes
}

/// The restore temp files in `dir`.
fn temps(dir: &Path) -> Vec<String> {
    let mut all: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".cachier-restore-"))
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all
}

/// Poll until a restore temp file shows in `dir`, or `child` ends
/// (`None`); bounded.
fn await_temp(child: &mut Child, dir: &Path) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(temp) = temps(dir).pop() {
            return Some(temp);
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        assert!(Instant::now() < deadline, "the hit neither ended nor wrote");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// SIGKILL `child` (if it still runs) and reap it, bounded.
fn kill(mut child: Child) {
    let _ = child.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "a SIGKILLed cachier is still there"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn served(env: &Env, flags: &[&str], script: &str) {
    let (out, _) = output_within(env.run_sh(flags, script), Duration::from_secs(120));
    assert_eq!(
        (out.status.code(), &out.stdout[..], &out.stderr[..]),
        (Some(0), &b"built\n"[..], &b""[..]),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_restore_killed_midway_tears_nothing_and_its_temp_file_is_never_stored() {
    let env = Env::file();
    let new = noise();
    std::fs::write(env.path("src.bin"), &new).unwrap();
    let flags = ["--output", "out"];
    served(&env, &flags, SCRIPT);
    assert_eq!(env.runs(), 1);
    let out_dir = env.path("out");
    let big = out_dir.join("big");
    let old = b"the user's old file\n";

    // Hits, each SIGKILLed as soon as its temp file shows, until one is
    // caught before its rename (a fast machine may finish first).
    let mut leftover = None;
    for _ in 0..20 {
        std::fs::write(&big, old).unwrap();
        let mut child = env
            .run_sh(&flags, SCRIPT)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let seen = await_temp(&mut child, &out_dir);
        kill(child);
        let now = std::fs::read(&big).unwrap();
        assert!(
            now == old || now == new,
            "torn: {} bytes, neither the old file nor the new one",
            now.len()
        );
        if seen.is_some() && !temps(&out_dir).is_empty() {
            leftover = temps(&out_dir).pop();
            break;
        }
    }
    let leftover = leftover.expect("no hit was caught before its rename in 20 tries");
    assert_eq!(
        std::fs::read(&big).unwrap(),
        old,
        "killed before its rename"
    );
    assert_eq!(env.runs(), 1, "killed hits run nothing");

    // The next hit restores the file whole; the fresh leftover (for all it
    // knows, another restore's) stays.
    served(&env, &flags, SCRIPT);
    assert_eq!(env.runs(), 1, "a hit");
    assert!(std::fs::read(&big).unwrap() == new, "restored byte-exact");
    assert_eq!(temps(&out_dir), std::slice::from_ref(&leftover));

    // A new entry captured with the leftover in the tree: not stored.
    let script = format!("{SCRIPT}; : another key");
    served(&env, &flags, &script);
    assert_eq!(env.runs(), 2, "a miss");
    let key = env.stdout(&["key", "--output", "out", "--", "sh", "-c", &script]);
    let shown = env.stdout(&["show", key.trim(), "--outputs"]);
    assert_eq!(
        shown,
        format!("dir 755\t0\tout\nfile 644\t{SIZE}\tout/big\n")
    );

    // Stale (its time set back, as if the killed restore were long past),
    // the next restore in that directory removes it.
    let file = std::fs::File::options()
        .write(true)
        .open(out_dir.join(&leftover))
        .unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(file);
    std::fs::remove_file(&big).unwrap();
    served(&env, &flags, &script);
    assert_eq!(env.runs(), 2, "a hit");
    assert!(std::fs::read(&big).unwrap() == new, "restored byte-exact");
    assert_eq!(temps(&out_dir), Vec::<String>::new());
}
