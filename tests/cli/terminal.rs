//! What a person at a terminal sees: the waiting spinner, and none without one.
use std::process::Command;

use assert_cmd::assert::OutputAssertExt;
use assert_cmd::cargo::CommandCargoExt;

use crate::harness::{Env, await_until, spawn_watching_stderr, touch, until_go};

/// Run `cachier run -- sh -c SCRIPT` under `script(1)`, which gives it a
/// pseudo-terminal, and return everything the terminal received.
fn on_terminal(env: &Env, script: &str, no_color: bool) -> String {
    let bin = Command::cargo_bin("cachier")
        .unwrap()
        .get_program()
        .to_owned();
    let line = format!("'{}' run -- sh -c '{script}'", bin.to_string_lossy());
    let log = env.path(if no_color { "plain.log" } else { "tty.log" });
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &line])
        .arg(&log)
        .current_dir(env.dir.path());
    // The terminal's type is the test's, not whatever ran the suite (CI
    // often has TERM=dumb or none, where no spinner is drawn).
    cmd.env("CACHIER_DIR", env.path("cache"))
        .env("TERM", "xterm-256color")
        .env("COUNT", env.path("count"));
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    cmd.assert().code(0);
    // Without a terminal on its own stdin, script(1) frames the session
    // with "Script started ..." and "Script done ..." lines: drop them.
    let text = std::fs::read_to_string(log).unwrap();
    let body = text
        .split_once('\n')
        .map_or(text.as_str(), |(_, rest)| rest);
    body.rsplit_once("\nScript done")
        .map_or(body, |(session, _)| session)
        .to_string()
}

#[test]
fn waiting_shows_a_spinner_only_on_a_terminal_without_no_color() {
    let env = Env::file();
    // No quotes inside: the same text must survive script(1)'s shell.
    let script = format!("echo $$ >> $COUNT; {}; echo done", until_go());
    let (owner, _lines) = spawn_watching_stderr(env.run_sh(&[], &script));
    await_until("the owner runs the command", || env.runs() == 1);
    let shown = std::thread::scope(|s| {
        let waiter = s.spawn(|| on_terminal(&env, &script, false));
        let plain = s.spawn(|| on_terminal(&env, &script, true));
        // The spinner's first frame is drawn before the owner may finish.
        await_until("the spinner is drawn", || {
            std::fs::read_to_string(env.path("tty.log"))
                .is_ok_and(|t| t.contains("cachier: waiting"))
        });
        touch(&env.path("go"));
        (waiter.join().unwrap(), plain.join().unwrap())
    });
    owner.wait_with_output().unwrap();
    let (tty, plain) = shown;
    assert!(
        tty.contains("cachier: waiting") && tty.contains(" pid "),
        "{tty:?}"
    );
    assert!(
        tty.ends_with("done\r\n"),
        "spinner cleared before the replay: {tty:?}"
    );
    assert_eq!(plain, "done\r\n", "NO_COLOR: no spinner");
    assert_eq!(env.runs(), 1);
}
