//! Conformance cases: What goes wrong: corrupt and truncated entries, closed stdout, and what -v says.
use std::process::Stdio;

use assert_cmd::assert::OutputAssertExt;

use super::*;
use crate::harness::*;

pub(super) fn corrupted(env: &Env, truncate: bool) {
    let script = numbered();
    env.run_sh(&[], &script).assert().stdout("1\n");
    env.backend.damage_entries(env.dir.path(), truncate);
    let out = env
        .run_sh(&[], &script)
        .assert()
        .code(0)
        .stdout("2\n")
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one warning line: {stderr}");
    assert!(
        stderr.starts_with("cachier: warning: cache entry ")
            && stderr.ends_with("discarded it and ran the command\n"),
        "{stderr}"
    );
    // The fresh result replaced the bad one.
    env.run_sh(&[], &script)
        .assert()
        .code(0)
        .stdout("2\n")
        .stderr("");
}

pub(super) fn corrupt_entry_is_discarded_and_recomputed(env: &Env) {
    corrupted(env, false);
}

pub(super) fn truncated_entry_is_discarded_and_recomputed(env: &Env) {
    corrupted(env, true);
}

pub(super) fn strict_turns_a_corrupt_entry_into_exit_125(env: &Env) {
    let script = numbered();
    env.run_sh(&[], &script).assert().stdout("1\n");
    env.backend.damage_entries(env.dir.path(), false);
    let out = env
        .run_sh(&["--strict"], &script)
        .assert()
        .code(125)
        .stdout("")
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("cachier: cache entry ") && stderr.ends_with("(--strict)\n"),
        "{stderr}"
    );
    assert_eq!(env.runs(), 1);
}

pub(super) fn closed_stdout_on_miss_stores_nothing(env: &Env) {
    let script = "echo $$ >> \"$COUNT\"; i=0; while :; do i=$((i+1)); echo line $i; done";
    let mut child = env
        .run_sh(&[], script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "line 1\n");
    drop(stdout);
    // The command dies of SIGPIPE, as it would in a plain pipe.
    assert_eq!(child.wait().unwrap().code(), Some(141));
    assert_eq!(env.count_entries(), 0);
}

pub(super) fn closed_stdout_on_hit_exits_141(env: &Env) {
    let script = format!("{}; head -c 4000000 /dev/zero", counted("start"));
    env.run_sh(&[], &script)
        .stdout(Stdio::null())
        .assert()
        .code(0);
    let mut child = env
        .run_sh(&[], &script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 5];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"start");
    drop(stdout);
    assert_eq!(child.wait().unwrap().code(), Some(141));
    assert_eq!(env.runs(), 1);
}

pub(super) fn verbose_says_hit_or_miss(env: &Env) {
    let script = counted("v");
    let out = env
        .run_sh(&["--verbose"], &script)
        .assert()
        .stdout("v")
        .get_output()
        .clone();
    let miss = String::from_utf8(out.stderr).unwrap();
    assert!(
        miss.starts_with("cachier: miss ") && miss.contains("stored"),
        "{miss}"
    );
    let out = env
        .run_sh(&["-v"], &script)
        .assert()
        .stdout("v")
        .get_output()
        .clone();
    let mut hit = String::from_utf8(out.stderr).unwrap();
    // A stack first says which tier served it.
    if let Some(first) = env.backend.tier_names().first() {
        let said = format!("cachier: tier {first} served ");
        assert!(hit.starts_with(&said), "{hit}");
        hit = hit.split_once('\n').unwrap().1.to_string();
    }
    assert_eq!(hit.lines().count(), 1);
    assert!(
        hit.starts_with("cachier: hit ") && hit.contains("made by") && hit.contains(" pid "),
        "{hit}"
    );
}
