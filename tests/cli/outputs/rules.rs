//! What `--output` refuses, and when nothing is stored; concurrent restores.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

#[test]
fn outputs_outside_the_working_directory_or_with_next_time_are_usage_errors() {
    let env = Env::file();
    for (flags, says) in [
        (
            &["--output", "/etc"][..],
            "--output `/etc` lies outside the working directory",
        ),
        (
            &["--output", "../x"],
            "--output `../x` climbs out with `..`",
        ),
        (
            &["--output", ".git/hooks"],
            "--output `.git/hooks` lies inside .git/",
        ),
        (
            &["--output", "."],
            "--output `.` is the working directory itself",
        ),
        (&["--output", "!*.o"], "--output has only exclusions"),
        (
            &["--output", "dist", "--next-time"],
            "--next-time does not combine with --output",
        ),
    ] {
        let out = env.run_sh(flags, "echo $$ >> \"$COUNT\"").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.starts_with(&format!("cachier: {says}")), "{stderr}");
        assert_eq!(stderr.lines().count(), 1);
    }
    assert_eq!(env.runs(), 0, "the command never ran");
}

#[test]
fn a_missing_output_stores_nothing_and_warns_once() {
    let env = Env::file();
    for _ in 0..2 {
        env.run_sh(&["--output", "dist", "--output", "gen/*.c"], "echo $$ >> \"$COUNT\"; mkdir -p gen; echo hi")
            .assert()
            .code(0)
            .stdout("hi\n")
            .stderr(
                "cachier: warning: declared output `dist` does not exist; nothing stored (the command's result stands)\n",
            );
    }
    assert_eq!(env.runs(), 2);
    assert_eq!(env.count_entries(), 0);
}

#[test]
fn outputs_count_against_the_entry_size_limit() {
    let env = Env::file();
    let script =
        "echo $$ >> \"$COUNT\"; mkdir -p dist; head -c 300000 /dev/urandom > dist/noise; echo hi";
    for _ in 0..2 {
        env.run_sh(&["--output", "dist", "--entry-size-limit", "100K"], script)
            .assert()
            .code(0)
            .stdout("hi\n")
            .stderr("");
    }
    assert_eq!(env.runs(), 2);
    assert_eq!(env.count_entries(), 0);
}

#[test]
fn globs_and_exclusions_pick_the_files() {
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; mkdir -p gen/a; echo 1 > gen/a/x.go; echo 2 > gen/a/x_test.go; echo 3 > gen/a/x.c";
    let flags = ["--output", "gen/**/*.go", "--output", "!gen/**/*_test.go"];
    env.run_sh(&flags, script).assert().code(0);
    std::fs::remove_dir_all(env.path("gen")).unwrap();
    env.run_sh(&flags, script).assert().code(0).stderr("");
    assert_eq!(env.runs(), 1);
    assert_eq!(std::fs::read(env.path("gen/a/x.go")).unwrap(), b"1\n");
    assert!(!env.path("gen/a/x_test.go").exists());
    assert!(!env.path("gen/a/x.c").exists());
}

#[test]
fn concurrent_restores_never_tear_a_file() {
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; mkdir -p dist; seq 1 5000000 > dist/big";
    env.run_sh(&["--output", "dist"], script).assert().code(0);
    let want = std::fs::read(env.path("dist/big")).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut seen = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(got) = std::fs::read(env.path("dist/big")) {
                    assert!(
                        got == want,
                        "a torn file: {} of {} bytes",
                        got.len(),
                        want.len()
                    );
                    seen += 1;
                }
            }
            seen
        });
        for _ in 0..3 {
            let pair: Vec<_> = (0..2)
                .map(|_| env.run_sh(&["--output", "dist"], script).spawn().unwrap())
                .collect();
            for child in pair {
                let out = wait_within(child, Duration::from_secs(60));
                assert_eq!(out.status.code(), Some(0));
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(watcher.join().unwrap() > 0);
    });
    assert_eq!(env.runs(), 1, "every run was a hit");
}

#[test]
fn export_import_carry_outputs_and_version_1_dumps_still_import() {
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; mkdir -p dist; printf 'x\\000y' > dist/bin";
    env.run_sh(&["--output", "dist"], script).assert().code(0);
    let dump = env.cachier(&["export"]).output().unwrap().stdout;
    assert_eq!(&dump[..14], b"cachier-dump\n\x02");
    env.cachier(&["clear"]).assert().code(0);
    std::fs::write(env.path("dump"), &dump).unwrap();
    let stdin = std::fs::File::open(env.path("dump")).unwrap();
    env.cachier(&["import"]).stdin(stdin).assert().code(0);
    std::fs::remove_dir_all(env.path("dist")).unwrap();
    env.run_sh(&["--output", "dist"], script)
        .assert()
        .code(0)
        .stderr("");
    assert_eq!(env.runs(), 1);
    assert_eq!(std::fs::read(env.path("dist/bin")).unwrap(), b"x\0y");
    // A dump of version 1 (no outputs) has the layout of a version 2 one
    // whose entries have none.
    env.cachier(&["clear"]).assert().code(0);
    env.run_sh(&[], &counted("plain")).assert().code(0);
    let mut old = env.cachier(&["export"]).output().unwrap().stdout;
    old[13] = 1;
    env.cachier(&["clear"]).assert().code(0);
    std::fs::write(env.path("old"), &old).unwrap();
    let stdin = std::fs::File::open(env.path("old")).unwrap();
    env.cachier(&["import"]).stdin(stdin).assert().code(0);
    env.run_sh(&[], &counted("plain"))
        .assert()
        .code(0)
        .stdout("plain");
    assert_eq!(env.runs(), 2);
}

/// A hit in the last tier copies the files up with the rest of the entry.
#[cfg(feature = "sqlite")]
#[test]
fn a_tier_fill_carries_the_outputs() {
    let env = Env::new(crate::backend::Backend::FileSql);
    let script = "echo $$ >> \"$COUNT\"; mkdir -p dist; echo made > dist/f";
    env.run_sh(&["--output", "dist"], script).assert().code(0);
    env.cachier(&["clear", "--tier", "file"]).assert().code(0);
    for served_by in ["sql", "file"] {
        std::fs::remove_dir_all(env.path("dist")).unwrap();
        let out = env
            .run_sh(&["-v", "--output", "dist"], script)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.starts_with(&format!("cachier: tier {served_by} served ")),
            "{said}"
        );
        assert_eq!(std::fs::read(env.path("dist/f")).unwrap(), b"made\n");
    }
    assert_eq!(env.runs(), 1);
}
