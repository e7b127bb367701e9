//! Conformance cases: The command line: a typo never runs, the longest durations are honoured.
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

pub(super) fn a_mistyped_option_is_never_run_as_the_command(env: &Env) {
    let mut cmd = env.cachier(&[
        "run",
        "--stale-afer",
        "1h",
        "--",
        "sh",
        "-c",
        "echo $$ >> \"$COUNT\"",
    ]);
    cmd.env("COUNT", env.path("count"));
    let out = cmd.assert().code(2).stdout("").get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("a similar argument exists: '--stale-after'"),
        "{stderr}"
    );
    assert_eq!(env.runs(), 0);
    assert_eq!(env.count_entries(), 0);
}

/// 100 years is the longest duration: in range, so honoured, with no
/// overflow in any expiry, lease or deadline computed from it.
pub(super) fn the_longest_durations_are_honoured(env: &Env) {
    let long = ["--stale-after", "100y", "--max-age", "3155760000"];
    for _ in 0..2 {
        env.run_sh(&long, &counted("x"))
            .assert()
            .code(0)
            .stdout("x")
            .stderr("");
    }
    assert_eq!(env.runs(), 1, "the second run was a hit");
    let script = format!("{}; {}; echo done", counted(""), until_go());
    let (owner, _lines) = spawn_watching_stderr(env.run_sh(&[], &script));
    await_until("the owner runs the command", || env.runs() == 2);
    let waiter = env
        .run_sh(&["--wait-for-calc-timeout", "100y"], &script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    touch(&env.path("go"));
    let out = owner.wait_with_output().unwrap();
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"done\n"[..])
    );
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"done\n"[..])
    );
    assert_eq!(env.runs(), 2, "the waiter replayed the owner's result");
}
