//! `cachier export` and `cachier import`: filters, damaged streams, newer
//! entries, terminals. The round trip itself is in the conformance suite.
use std::process::{Command, Output};
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;
use assert_cmd::cargo::CommandCargoExt;

use crate::harness::*;

/// Run `cachier export ARGS`; its stdout (the dump) and stderr.
pub fn export(env: &Env, args: &[&str]) -> (Vec<u8>, String) {
    let mut full = vec!["export"];
    full.extend_from_slice(args);
    let out = env.cachier(&full).assert().code(0).get_output().clone();
    (out.stdout, String::from_utf8(out.stderr).unwrap())
}

/// Run `cachier import < DUMP` against `env`'s cache.
pub fn import(env: &Env, dump: &[u8]) -> Output {
    let path = env.path("import.dump");
    std::fs::write(&path, dump).unwrap();
    let mut cmd = env.cachier(&["import"]);
    cmd.stdin(std::fs::File::open(path).unwrap());
    cmd.output().unwrap()
}

/// `cmd` run in `home`'s directory, counting into `home`'s `$COUNT`: the
/// same key as there, whichever cache it uses.
pub fn as_in(home: &Env, mut cmd: Command) -> Command {
    cmd.current_dir(home.dir.path())
        .env("COUNT", home.path("count"));
    cmd
}

/// The size as cachier prints it.
pub fn human(bytes: usize) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < 3 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", ["KiB", "MiB", "GiB", "TiB"][unit])
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The short key (12 hex digits) of `sh -c SCRIPT` run in `env`'s directory.
fn short_key(env: &Env, script: &str) -> String {
    let out = env
        .cachier(&["key", "--", "sh", "-c", script])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()[..12].to_string()
}

/// Three entries whose stdout is a lowercase word that appears nowhere else
/// in the dump (their argv holds it in capitals); in dump order.
fn three_entries(env: &Env) -> Vec<(String, &'static str)> {
    let mut made = Vec::new();
    for word in ["alpha-payload", "bravo-payload", "charlie-payload"] {
        let script = format!(
            "echo $$ >> \"$COUNT\"; printf '%s' '{}' | tr A-Z a-z",
            word.to_uppercase()
        );
        env.run_sh(&[], &script).assert().code(0).stdout(word);
        made.push((script, word));
    }
    let (dump, _) = export(env, &[]);
    made.sort_by_key(|(_, word)| find(&dump, word.as_bytes()));
    made
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

const KEPT_ONE: &str = "the 1 entry imported before it is kept \
     (import a sound dump again: entries already here are skipped)";

/// Import a damaged dump; expect one error line about record 2 (exit 2),
/// record 1 imported intact, records 2 and 3 not.
fn damaged(env: &Env, entries: &[(String, &'static str)], dump: &[u8], problem: &str) {
    let other = Env::file();
    let out = import(&other, dump);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!("cachier: import: {problem}; {KEPT_ONE}\n")
    );
    assert_eq!(other.count_entries(), 1);
    let runs = env.runs();
    let (first, word) = &entries[0];
    as_in(env, other.run_sh(&[], first))
        .assert()
        .code(0)
        .stdout(*word)
        .stderr("");
    assert_eq!(env.runs(), runs, "record 1 was imported intact");
    as_in(env, other.run_sh(&[], &entries[1].0))
        .assert()
        .stdout(entries[1].1);
    assert_eq!(env.runs(), runs + 1, "record 2 was not imported");
}

#[test]
fn truncated_stream_names_the_record_and_keeps_the_ones_before() {
    let env = Env::file();
    let entries = three_entries(&env);
    let (dump, _) = export(&env, &[]);
    let second = entries[1].1;
    let cut = find(&dump, second.as_bytes()) + second.len() / 2;
    let key = short_key(&env, &entries[1].0);
    damaged(
        &env,
        &entries,
        &dump[..cut],
        &format!("record 2 (key {key}) is cut short: the stream ends inside it"),
    );
    // Cut at a record boundary: the end record (the last 41 bytes) is missing.
    let other = Env::file();
    let out = import(&other, &dump[..dump.len() - 41]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "cachier: import: the dump is cut short after record 3 (no end record); \
         the 3 entries imported before it are kept \
         (import a sound dump again: entries already here are skipped)\n"
    );
    assert_eq!(other.count_entries(), 3);
    // An end record that miscounts (checksummed, so not a flipped bit).
    let mut end = vec![b'Z'];
    end.extend_from_slice(&4u64.to_le_bytes());
    end.extend_from_slice(blake3::hash(&end).as_bytes());
    let forged = [&dump[..dump.len() - 41], &end].concat();
    let other = Env::file();
    let out = import(&other, &forged);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "cachier: import: record 4 is corrupt (the end record counts 4 entries, 3 came before it); \
         the 3 entries imported before it are kept \
         (import a sound dump again: entries already here are skipped)\n"
    );
}

#[test]
fn flipped_byte_names_the_record_and_keeps_the_ones_before() {
    let env = Env::file();
    let entries = three_entries(&env);
    let (dump, _) = export(&env, &[]);
    let key = short_key(&env, &entries[1].0);
    // In the output: caught by the stream's checksum, after its metadata verified.
    let mut bad = dump.clone();
    bad[find(&dump, entries[1].1.as_bytes()) + 3] ^= 0x20;
    damaged(
        &env,
        &entries,
        &bad,
        &format!("record 2 (key {key}) is corrupt (stdout checksum mismatch)"),
    );
    // In the metadata: caught before its key is trusted.
    let mut bad = dump.clone();
    bad[find(&dump, entries[1].1.to_uppercase().as_bytes()) + 3] ^= 0x20;
    damaged(
        &env,
        &entries,
        &bad,
        "record 2 is corrupt (metadata checksum mismatch)",
    );
}

#[test]
fn input_that_is_not_a_dump_is_refused() {
    let env = Env::file();
    for (input, why) in [
        (
            &b"hello world\n"[..],
            "the input is not a cachier dump (it does not start with `cachier-dump`)",
        ),
        (&b""[..], "the input is empty, not a cachier dump"),
    ] {
        let out = import(&env, input);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            stderr(&out),
            format!("cachier: import: {why}; make one with `cachier export > dump`\n")
        );
    }
    let out = import(&env, b"cachier-dump\n\x07");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "cachier: import: this dump has format version 7, this cachier reads version 2; \
         import it with a newer cachier\n"
    );
    assert_eq!(env.count_entries(), 0);
}

#[test]
fn name_filters_the_export() {
    let env = Env::file();
    let one = counted("in a");
    let two = counted("in b");
    env.run_sh(&["--name", "a"], &one).assert().stdout("in a");
    env.run_sh(&["--name", "b"], &two).assert().stdout("in b");
    let (dump, said) = export(&env, &["--name", "a"]);
    assert_eq!(
        said,
        format!("cachier: exported 1 entry ({})\n", human(dump.len()))
    );
    let other = Env::file();
    let out = import(&other, &dump);
    assert_eq!(
        stderr(&out),
        format!("cachier: imported 1 entry ({})\n", human(dump.len()))
    );
    as_in(&env, other.run_sh(&["--name", "a"], &one))
        .assert()
        .stdout("in a");
    assert_eq!(env.runs(), 2);
    as_in(&env, other.run_sh(&["--name", "b"], &two))
        .assert()
        .stdout("in b");
    assert_eq!(env.runs(), 3, "namespace b was not exported");
}

#[test]
fn the_newer_entry_wins() {
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; wc -l < \"$COUNT\" | tr -d ' '";
    env.run_sh(&[], script).assert().stdout("1\n");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(3600));
    let (dump, _) = export(&env, &[]);
    let size = human(dump.len());
    let other = Env::file();
    as_in(&env, other.run_sh(&[], script))
        .assert()
        .stdout("2\n");
    // Here is newer: kept. The same age (imported twice): kept too.
    for _ in 0..2 {
        let out = import(&other, &dump);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            stderr(&out),
            format!(
                "cachier: imported 0 entries ({size}), kept 1 entry already here and as new or newer\n"
            )
        );
        as_in(&env, other.run_sh(&[], script))
            .assert()
            .stdout("2\n");
    }
    // Here is older: replaced.
    other
        .backend
        .age_entries(other.dir.path(), Duration::from_secs(2 * 3600));
    let out = import(&other, &dump);
    assert_eq!(
        stderr(&out),
        format!("cachier: imported 1 entry ({size})\n")
    );
    as_in(&env, other.run_sh(&[], script))
        .assert()
        .stdout("1\n");
    assert_eq!(env.runs(), 2);
}

#[test]
fn a_corrupt_entry_is_not_exported() {
    let env = Env::file();
    let good = counted("good");
    let bad = counted("bad");
    env.run_sh(&[], &good).assert().stdout("good");
    env.run_sh(&[], &bad).assert().stdout("bad");
    let key = short_key(&env, &bad);
    let path = crate::backend::entry_files(env.dir.path())
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&key))
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let (dump, said) = export(&env, &[]);
    assert_eq!(
        said,
        format!(
            "cachier: warning: export: cache entry {key} is corrupt (checksum mismatch); skipped it\n\
             cachier: exported 1 entry ({}), skipped 1 corrupt\n",
            human(dump.len())
        )
    );
    let other = Env::file();
    assert_eq!(import(&other, &dump).status.code(), Some(0));
    as_in(&env, other.run_sh(&[], &good))
        .assert()
        .stdout("good");
    assert_eq!(env.runs(), 2);
}

/// Run `cachier LINE` under `script(1)` (a pseudo-terminal on stdin, stdout
/// and stderr, unless LINE redirects them); its exit code and what the
/// terminal received, without script's own framing lines.
fn on_terminal(env: &Env, line: &str, no_color: bool) -> (i32, String) {
    let bin = Command::cargo_bin("cachier")
        .unwrap()
        .get_program()
        .to_owned();
    let line = format!("'{}' {line}", bin.to_string_lossy());
    let log = env.path("tty.log");
    let mut cmd = Command::new("script");
    // The terminal's type is the test's, not whatever ran the suite (CI
    // often has TERM=dumb or none, where no bar is drawn).
    cmd.args(["-qefc", &line])
        .arg(&log)
        .current_dir(env.dir.path())
        .env("TERM", "xterm-256color")
        .env("CACHIER_DIR", env.path("cache"))
        .env("CACHIER_CONFIG", env.path("config.toml"));
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let code = cmd.output().unwrap().status.code().unwrap();
    let text = std::fs::read_to_string(log).unwrap();
    let body = text
        .split_once('\n')
        .map_or(text.as_str(), |(_, rest)| rest);
    let body = body
        .rsplit_once("\nScript done")
        .map_or(body, |(session, _)| session);
    (code, body.to_string())
}

#[test]
fn terminals_get_a_progress_bar_and_no_binary() {
    let env = Env::file();
    env.run_sh(&[], &counted("x")).assert().stdout("x");
    let (code, shown) = on_terminal(&env, "export", false);
    assert_eq!(code, 2);
    assert_eq!(
        shown,
        "cachier: export writes a binary stream, not text for a terminal; \
         redirect it: cachier export > dump\r\n"
    );
    let (code, shown) = on_terminal(&env, "import", false);
    assert_eq!(code, 2);
    assert_eq!(
        shown,
        "cachier: import reads a dump from standard input; redirect it: cachier import < dump\r\n"
    );
    // A bar on the terminal, cleared before the summary.
    let (code, shown) = on_terminal(&env, "export > dump", false);
    assert_eq!(code, 0);
    let summary = format!(
        "cachier: exported 1 entry ({})\r\n",
        human(std::fs::read(env.path("dump")).unwrap().len())
    );
    assert!(
        shown.starts_with("cachier: exporting ") && shown.ends_with(&format!("\x1b[2K{summary}")),
        "{shown:?}"
    );
    let (code, shown) = on_terminal(&env, "export > dump", true);
    assert_eq!(code, 0);
    assert_eq!(shown, summary, "NO_COLOR: no bar");
    let (code, shown) = on_terminal(&env, "import < dump", false);
    assert_eq!(code, 0);
    assert!(shown.starts_with("cachier: importing "), "{shown:?}");
}
