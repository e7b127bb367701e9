//! Conformance cases: Single-flight and signals: one run per key, waiters, timeouts, forwarded signals.
use std::process::Stdio;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

pub(super) fn concurrent_callers_run_the_command_once(env: &Env) {
    let script = format!("{}; {}; echo done", "echo $$ >> \"$COUNT\"", until_go());
    let mut callers = Vec::new();
    for _ in 0..16 {
        callers.push(spawn_watching_stderr(env.run_sh(&["--verbose"], &script)));
    }
    await_until("one caller runs the command", || env.runs() == 1);
    // Fifteen callers must be waiting before the owner may finish.
    let mut waiting = 0;
    await_until("fifteen callers wait", || {
        for (_, lines) in &callers {
            waiting += lines
                .try_iter()
                .filter(|l| l.contains("waiting for"))
                .count();
        }
        waiting == 15
    });
    touch(&env.path("go"));
    for (child, _) in callers {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(out.stdout, b"done\n");
    }
    assert_eq!(env.runs(), 1);
    assert_eq!(
        (
            env.stat("sh", "misses"),
            env.stat("sh", "hits"),
            env.stat("sh", "waits")
        ),
        (1, 15, 15)
    );
}

pub(crate) fn killed_owner_frees_waiters_at_once(env: &Env) {
    let script = format!("{}; {}; echo done", "echo $$ >> \"$COUNT\"", until_go());
    let (mut owner, _owner_lines) = spawn_watching_stderr(env.run_sh(&["--verbose"], &script));
    await_until("the owner runs the command", || env.runs() == 1);
    let (waiter, lines) = spawn_watching_stderr(env.run_sh(&["--verbose"], &script));
    expect_line(&lines, "waiting for");
    owner.kill().unwrap();
    owner.wait().unwrap();
    // The waiter takes over and runs the command itself.
    await_until("the waiter takes over", || env.runs() == 2);
    touch(&env.path("go"));
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"done\n");
}

pub(super) fn wait_for_calc_timeout_gives_up_and_runs(env: &Env) {
    let script = format!(
        "echo $$ >> \"$COUNT\"; n=$(wc -l < \"$COUNT\" | tr -d ' '); [ $n -eq 1 ] && {}; echo $n",
        until_go()
    );
    let (owner, _lines) = spawn_watching_stderr(env.run_sh(&[], &script));
    await_until("the owner runs the command", || env.runs() == 1);
    env.run_sh(&["--wait-for-calc-timeout", "200ms"], &script)
        .assert()
        .code(0)
        .stdout("2\n");
    touch(&env.path("go"));
    let out = owner.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"1\n");
    // The last complete result wins.
    env.run_sh(&[], &script).assert().stdout("1\n");
}

pub(super) fn signals_reach_the_command(env: &Env) {
    use rustix::process::Signal;
    for (signal, name) in [
        (Signal::TERM, "TERM"),
        (Signal::INT, "INT"),
        (Signal::HUP, "HUP"),
        (Signal::QUIT, "QUIT"),
    ] {
        let script = format!(
            "echo $$ >> \"$COUNT\"; trap 'echo got {name}; exit 7' {name}; echo ready; while :; do sleep 0.01; done"
        );
        let mut child = env
            .run_sh(&[], &script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert_eq!(line, "ready\n");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        assert_eq!(rest, format!("got {name}\n"));
        assert_eq!(child.wait().unwrap().code(), Some(7), "{name}");
    }
    assert_eq!(env.count_entries(), 0, "an interrupted run is never stored");
}

pub(super) fn command_killed_by_signal_exits_128_plus_n(env: &Env) {
    env.run_sh(&[], "echo $$ >> \"$COUNT\"; printf partial; kill -TERM $$")
        .assert()
        .code(143)
        .stdout("partial");
    env.run_sh(&["--cache-failures"], "kill -KILL $$")
        .assert()
        .code(137);
    assert_eq!(env.count_entries(), 0);
}
