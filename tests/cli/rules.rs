//! Rules of README's "Behaviour" that the conformance suite let slip: each
//! case here failed against a cachier broken on purpose (issue 13, item 6)
//! and passes against the real one. Most run against every backend; the
//! few at the bottom need the file store's layout or a file-size limit.
use std::process::Stdio;

use assert_cmd::assert::OutputAssertExt;
use rustix::process::Signal;

use crate::harness::*;
use crate::running::Running;

crate::backend::on_every_backend!(
    forwarded_signals_reach_the_command_and_nothing_is_stored,
    closed_stdout_stores_nothing_though_the_command_carries_on,
    output_after_stdout_closes_is_read_and_stored,
    entry_size_limit_counts_stderr_too,
    a_corrupt_stderr_is_caught_before_any_byte,
    a_corrupt_entry_is_removed_though_the_rerun_is_not_stored,
    a_waiter_that_gives_up_stores_its_own_result,
);

const SIGNALS: [(Signal, &str, i32); 4] = [
    (Signal::INT, "INT", 2),
    (Signal::TERM, "TERM", 15),
    (Signal::HUP, "HUP", 1),
    (Signal::QUIT, "QUIT", 3),
];

/// A signal sent to cachier alone reaches the command. A command that
/// traps it and exits 0 was still interrupted: its result is not stored.
/// One that dies of it makes cachier exit 128+N.
fn forwarded_signals_reach_the_command_and_nothing_is_stored(env: &Env) {
    for (signal, name, n) in SIGNALS {
        let script = format!(
            "echo $$ >> \"$COUNT\"; trap 'echo got {name}; exit 0' {name}; echo ready; while :; do sleep 0.01; done"
        );
        let mut run = Running::start(env.run_sh(&[], &script));
        run.read_until("ready\n");
        run.signal(signal);
        let done = run.finish();
        assert_eq!(done.status.code(), Some(0), "{name}");
        assert_eq!(done.stdout, format!("ready\ngot {name}\n").as_bytes());
        assert_eq!(env.count_entries(), 0, "stored after a trapped {name}");

        // `exec`: the command is `sleep` itself, so no shell's own signal
        // handling stands between the signal and its default action.
        let script = format!("echo $$ >> \"$COUNT\"; echo {name}; exec sleep 120");
        let mut run = Running::start(env.run_sh(&["--cache-failures"], &script));
        run.read_until(&format!("{name}\n"));
        run.signal(signal);
        let done = run.finish();
        assert_eq!(done.status.code(), Some(128 + n), "{name}");
        assert_eq!(env.count_entries(), 0, "stored after a fatal {name}");
    }
}

/// `| head -1`: a command that keeps writing dies of SIGPIPE, as in a plain
/// pipe. One that ignores SIGPIPE gets EPIPE, carries on and exits 0; its
/// output was cut all the same, so nothing is stored.
fn closed_stdout_stores_nothing_though_the_command_carries_on(env: &Env) {
    let mut run = Running::start(env.run_sh(&[], "while :; do echo line; done"));
    run.read_until("line\n");
    run.close_stdout();
    assert_eq!(run.finish().status.code(), Some(141));
    assert_eq!(env.count_entries(), 0);

    // `second` is written 20 times, 10 ms apart: while another test's
    // process is between fork and exec it holds a copy of every descriptor,
    // our closed read end included, and one write may still get through.
    let script = format!(
        "echo $$ >> \"$COUNT\"; trap '' PIPE; echo first; {}; \
         for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; \
         do echo second; sleep 0.01; done; exit 0",
        until_go()
    );
    let mut run = Running::start(env.run_sh(&[], &script));
    run.read_until("first\n");
    run.close_stdout();
    touch(&env.path("go"));
    let done = run.finish();
    assert_eq!(done.status.code(), Some(0));
    assert_eq!(env.count_entries(), 0, "a cut output was stored");
    // So the next run computes, and that whole result is stored.
    for _ in 0..2 {
        env.run_sh(&[], &script)
            .assert()
            .code(0)
            .stdout(format!("first\n{}", "second\n".repeat(20)));
    }
    assert_eq!(env.runs(), 2);
}

/// Like a shell pipe, cachier reads until both pipes close: stderr written
/// after stdout closed, by a process the command left behind, is passed on
/// and stored.
fn output_after_stdout_closes_is_read_and_stored(env: &Env) {
    let script = "echo $$ >> \"$COUNT\"; echo early; exec >&-; (sleep 0.2; echo late >&2) &";
    for _ in 0..2 {
        let done = Running::start(env.run_sh(&[], script)).finish();
        assert_eq!(done.status.code(), Some(0));
        assert_eq!(done.stdout, b"early\n");
        assert_eq!(done.stderr, b"late\n");
    }
    assert_eq!(env.runs(), 1);
}

fn entry_size_limit_counts_stderr_too(env: &Env) {
    let script = "echo $$ >> \"$COUNT\"; printf 012; printf 3456789 >&2";
    for _ in 0..2 {
        env.run_sh(&["--entry-size-limit", "5"], script)
            .assert()
            .code(0)
            .stdout("012")
            .stderr("3456789");
    }
    assert_eq!(env.runs(), 2);
    assert_eq!(env.count_entries(), 0);
}

/// A script that prints how many times it ran, on stderr only: the first
/// byte a damaged entry has flipped is then one of stderr.
fn numbered_on_stderr() -> &'static str {
    "echo $$ >> \"$COUNT\"; echo err $(wc -l < \"$COUNT\" | tr -d ' ') >&2"
}

fn a_corrupt_stderr_is_caught_before_any_byte(env: &Env) {
    let script = numbered_on_stderr();
    env.run_sh(&[], script).assert().code(0).stderr("err 1\n");
    env.backend.damage_entries(env.dir.path(), false);
    let out = env
        .run_sh(&[], script)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (warning, rest) = stderr.split_once('\n').unwrap_or_default();
    assert!(
        warning.starts_with("cachier: warning: cache entry ")
            && warning.ends_with("discarded it and ran the command"),
        "{stderr}"
    );
    assert_eq!(rest, "err 2\n", "nothing of the damaged entry came out");
}

/// A corrupt entry is discarded even when the command's new result is not
/// stored (here it fails), so no store keeps the bad copy.
fn a_corrupt_entry_is_removed_though_the_rerun_is_not_stored(env: &Env) {
    let script = "echo $$ >> \"$COUNT\"; [ -e fail ] && exit 3; echo ok";
    env.run_sh(&[], script).assert().code(0).stdout("ok\n");
    assert_eq!(env.count_entries(), 1);
    env.backend.damage_entries(env.dir.path(), false);
    touch(&env.path("fail"));
    let out = env.run_sh(&[], script).assert().code(3).stdout("");
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.ends_with("discarded it and ran the command\n"),
        "{stderr}"
    );
    assert_eq!(env.count_entries(), 0, "the corrupt entry is still stored");
}

/// `--wait-for-calc-timeout` bounds the wait; the waiter then computes and
/// stores its own result, which the next caller replays at once; the
/// owner's result, complete last, wins.
fn a_waiter_that_gives_up_stores_its_own_result(env: &Env) {
    let script = format!(
        "echo $$ >> \"$COUNT\"; n=$(wc -l < \"$COUNT\" | tr -d ' '); [ $n -eq 1 ] && {}; echo $n",
        until_go()
    );
    let flags = ["--wait-for-calc-timeout", "200ms"];
    let owner = Running::start(env.run_sh(&[], &script));
    await_until("the owner runs the command", || env.runs() == 1);
    for _ in 0..2 {
        let done = Running::start(env.run_sh(&flags, &script)).finish();
        assert_eq!(done.status.code(), Some(0));
        assert_eq!(done.stdout, b"2\n");
    }
    assert_eq!(env.runs(), 2, "the waiter's result was not stored");
    touch(&env.path("go"));
    let done = owner.finish();
    assert_eq!(done.stdout, b"1\n");
    env.run_sh(&[], &script).assert().code(0).stdout("1\n");
    assert_eq!(env.runs(), 2);
}

/// The file store's layout (stdout, then stderr) lets this test damage
/// stderr alone behind a good stdout: not one byte of that stdout may come
/// out before the damage is found.
#[test]
fn a_corrupt_stderr_yields_no_partial_stdout() {
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; wc -l < \"$COUNT\" | tr -d ' '; echo err >&2";
    env.run_sh(&[], script)
        .assert()
        .code(0)
        .stdout("1\n")
        .stderr("err\n");
    for path in crate::backend::entry_files(env.dir.path()) {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[2] ^= 0x55;
        std::fs::write(&path, bytes).unwrap();
    }
    let out = env.run_sh(&[], script).assert().code(0).stdout("2\n");
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.starts_with("cachier: warning: cache entry ") && stderr.ends_with("command\nerr\n"),
        "{stderr}"
    );
}

/// With `--skip-cache` no key is computed, so no `--input` is read.
#[test]
fn skip_cache_reads_no_input() {
    let env = Env::file();
    env.run_sh(&["--skip-cache", "--input", "missing-file"], &counted("x"))
        .assert()
        .code(0)
        .stdout("x")
        .stderr("");
    assert_eq!(env.count_entries(), 0);
}

/// A full disk under `--strict` is an error (exit 125) once the command is
/// done; its output still went through whole.
#[test]
fn strict_makes_a_full_disk_exit_125() {
    use std::os::unix::process::CommandExt;
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; head -c 100000 /dev/zero | tr '\\0' a; echo done >&2";
    let mut cmd = env.run_sh(&["--strict"], script);
    // SAFETY: setrlimit is async-signal-safe. A 4 KiB file-size limit makes
    // cache writes fail the way a full disk does.
    unsafe {
        cmd.pre_exec(|| {
            let limit = rustix::process::Rlimit {
                current: Some(4096),
                maximum: Some(4096),
            };
            rustix::process::setrlimit(rustix::process::Resource::Fsize, limit).map_err(Into::into)
        });
    }
    let out = cmd.assert().code(125).get_output().clone();
    assert!(
        out.stdout.len() == 100_000 && out.stdout.iter().all(|&b| b == b'a'),
        "stdout intact"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("done\ncachier: cannot write the cache entry (")
            && stderr.ends_with("(--strict)\n")
            && stderr.lines().count() == 2,
        "{stderr}"
    );
    assert_eq!(env.count_entries(), 0);
}
