//! The conformance suite: one list of cases, run against every backend and
//! stack. A new backend adds its name to a `suite!` line at the bottom.
use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

macro_rules! conformance {
    ($module:ident = $backend:ident: $($case:ident),* $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    if let Some(env) = crate::harness::Env::try_new(crate::backend::Backend::$backend) {
                        super::$case(&env);
                    }
                }
            )*
        }
    };
}

macro_rules! suite {
    ($($module:ident = $backend:ident),*) => {$(
        conformance!($module = $backend:
            miss_then_hit_replays_bytes_and_code,
            every_byte_value_round_trips,
            order_is_kept_when_streams_share_a_file,
            failures_are_not_cached_by_default,
            cache_exit_codes_and_cache_failures,
            no_empty_skips_empty_stdout,
            entry_size_limit_passes_through_unstored,
            stdin_is_keyed_and_fed,
            stale_entries_are_recomputed,
            max_age_is_a_stricter_bound,
            next_time_serves_stale_and_refreshes_detached,
            overwrite_recomputes_a_fresh_entry,
            skip_cache_and_disable_read_and_write_nothing,
            concurrent_callers_run_the_command_once,
            killed_owner_frees_waiters_at_once,
            wait_for_calc_timeout_gives_up_and_runs,
            signals_reach_the_command,
            command_killed_by_signal_exits_128_plus_n,
            corrupt_entry_is_discarded_and_recomputed,
            truncated_entry_is_discarded_and_recomputed,
            strict_turns_a_corrupt_entry_into_exit_125,
            closed_stdout_on_miss_stores_nothing,
            closed_stdout_on_hit_exits_141,
            verbose_says_hit_or_miss,
            counters_follow_hits_misses_and_entries,
            clear_by_filter_or_command_line,
            ls_and_show_report_entries,
            precache_is_served_by_run,
            stats_reset_keeps_entries,
            gc_evicts_least_recently_used,
            a_store_over_max_size_is_collected_in_the_background,
            cleanup_stale_clears_the_namespace_in_the_background,
            export_import_round_trips,
            a_mistyped_option_is_never_run_as_the_command,
            the_longest_durations_are_honoured,
        );
    )*};
}

suite!(file = File, postgres = Postgres);
suite!(memory = Memory);
#[cfg(feature = "sqlite")]
suite!(sqlite = Sqlite, file_sql = FileSql);
#[cfg(feature = "redis")]
suite!(
    redis = Redis,
    redis_cluster = RedisCluster,
    memory_redis_sql = Stack
);
#[cfg(feature = "mongo")]
suite!(mongo = Mongo);

fn miss_then_hit_replays_bytes_and_code(env: &Env) {
    let script = format!("{}; printf 'to stderr\\n' >&2; exit 0", counted("hello\n"));
    for _ in 0..2 {
        env.run_sh(&[], &script)
            .assert()
            .code(0)
            .stdout("hello\n")
            .stderr("to stderr\n");
    }
    assert_eq!(env.runs(), 1);
    let script = format!("{}; exit 4", counted("four"));
    for _ in 0..2 {
        env.run_sh(&["--cache-failures"], &script)
            .assert()
            .code(4)
            .stdout("four")
            .stderr("");
    }
    assert_eq!(env.runs(), 2);
}

fn every_byte_value_round_trips(env: &Env) {
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(256 * 700).collect();
    bytes.extend_from_slice(b"\xff\xfe\x00not utf-8 \xc3\x28");
    std::fs::write(env.path("blob"), &bytes).unwrap();
    let script = "echo $$ >> \"$COUNT\"; cat blob; cat blob >&2";
    for _ in 0..2 {
        let out = env.run_sh(&[], script).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout == bytes, "stdout differs");
        assert!(out.stderr == bytes, "stderr differs");
    }
    assert_eq!(env.runs(), 1);
}

fn order_is_kept_when_streams_share_a_file(env: &Env) {
    // The pauses let each piece reach cachier before the next is written:
    // two pipes cannot tell the order of writes that arrive together.
    let script = "echo $$ >> \"$COUNT\"; printf 'a\\n'; sleep 0.1; printf 'b\\n' >&2; sleep 0.1; printf 'c\\n'";
    for round in 0..2 {
        let path = env.path(&format!("both{round}"));
        let file = File::create(&path).unwrap();
        let status = env
            .run_sh(&[], script)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "a\nb\nc\n",
            "round {round}"
        );
    }
    assert_eq!(env.runs(), 1);
}

fn failures_are_not_cached_by_default(env: &Env) {
    let script = format!("{}; echo oops >&2; exit 3", counted("partial"));
    for _ in 0..2 {
        env.run_sh(&[], &script)
            .assert()
            .code(3)
            .stdout("partial")
            .stderr("oops\n");
    }
    assert_eq!(env.runs(), 2);
    assert_eq!(env.count_entries(), 0);
}

fn cache_exit_codes_and_cache_failures(env: &Env) {
    let script = format!("{}; exit 3", counted("three"));
    for _ in 0..2 {
        env.run_sh(&["--cache-exit-codes", "0,3"], &script)
            .assert()
            .code(3)
            .stdout("three");
    }
    assert_eq!(env.runs(), 1);
    let script = format!("{}; exit 9", counted("nine"));
    for _ in 0..2 {
        env.run_sh(&["--cache-exit-codes", "0,3"], &script)
            .assert()
            .code(9);
    }
    assert_eq!(env.runs(), 3);
}

fn no_empty_skips_empty_stdout(env: &Env) {
    let script = "echo $$ >> \"$COUNT\"; echo only-stderr >&2";
    for _ in 0..2 {
        env.run_sh(&["--no-empty"], script)
            .assert()
            .code(0)
            .stdout("")
            .stderr("only-stderr\n");
    }
    assert_eq!(env.runs(), 2);
    for _ in 0..2 {
        env.run_sh(&[], script)
            .assert()
            .code(0)
            .stdout("")
            .stderr("only-stderr\n");
    }
    assert_eq!(env.runs(), 3);
}

fn entry_size_limit_passes_through_unstored(env: &Env) {
    let script = counted("0123456789");
    for _ in 0..2 {
        env.run_sh(&["--entry-size-limit", "5"], &script)
            .assert()
            .code(0)
            .stdout("0123456789");
    }
    assert_eq!(env.runs(), 2);
    assert_eq!(env.count_entries(), 0);
    env.run_sh(&["--entry-size-limit", "1K"], &script)
        .assert()
        .code(0)
        .stdout("0123456789");
    assert_eq!(env.count_entries(), 1);
}

fn stdin_is_keyed_and_fed(env: &Env) {
    let script = "echo $$ >> \"$COUNT\"; tr a-z A-Z";
    let feed = |text: &str| {
        std::fs::write(env.path("in"), text).unwrap();
        let input = File::open(env.path("in")).unwrap();
        env.run_sh(&["--stdin"], script)
            .stdin(input)
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone()
    };
    assert_eq!(feed("abc"), b"ABC");
    assert_eq!(feed("abc"), b"ABC");
    assert_eq!(env.runs(), 1);
    assert_eq!(feed("xyz"), b"XYZ");
    assert_eq!(env.runs(), 2);
}

/// A script that prints how many times it ran.
fn numbered() -> String {
    "echo $$ >> \"$COUNT\"; wc -l < \"$COUNT\" | tr -d ' '".to_string()
}

fn stale_entries_are_recomputed(env: &Env) {
    let script = numbered();
    env.run_sh(&["--stale-after", "1h"], &script)
        .assert()
        .stdout("1\n");
    env.run_sh(&["--stale-after", "1h"], &script)
        .assert()
        .stdout("1\n");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    env.run_sh(&["--stale-after", "1h"], &script)
        .assert()
        .stdout("2\n");
    env.run_sh(&["--stale-after", "1h"], &script)
        .assert()
        .stdout("2\n");
    // Without --stale-after an entry never goes stale; the env var sets it too.
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    env.run_sh(&[], &script).assert().stdout("2\n");
    env.run_sh(&[], &script)
        .env("CACHIER_STALE_AFTER", "1h")
        .assert()
        .stdout("3\n");
}

fn max_age_is_a_stricter_bound(env: &Env) {
    let script = numbered();
    env.run_sh(&[], &script).assert().stdout("1\n");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(3600));
    env.run_sh(&["--max-age", "2h"], &script)
        .assert()
        .stdout("1\n");
    env.run_sh(&["--max-age", "30m"], &script)
        .assert()
        .stdout("2\n");
    // --next-time never serves past --max-age.
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(3600));
    env.run_sh(
        &["--stale-after", "1m", "--next-time", "--max-age", "30m"],
        &script,
    )
    .assert()
    .stdout("3\n");
}

fn next_time_serves_stale_and_refreshes_detached(env: &Env) {
    // The first run is quick; every later run blocks until `go` exists.
    let script = format!(
        "{}; n=$(wc -l < \"$COUNT\" | tr -d ' '); [ $n -gt 1 ] && {}; echo $n",
        "echo $$ >> \"$COUNT\"",
        until_go()
    );
    let flags = ["--stale-after", "1h", "--next-time"];
    env.run_sh(&flags, &script).assert().stdout("1\n");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    // Served at once, and the caller's pipe closes although the refresh still
    // runs: it holds none of the caller's descriptors.
    let out = output_within(env.run_sh(&flags, &script));
    assert_eq!(out.stdout, b"1\n");
    assert_eq!(out.status.code(), Some(0));
    await_until("the background refresh runs", || env.runs() == 2);
    // A second stale caller serves too, and starts no second refresh.
    let out = output_within(env.run_sh(&flags, &script));
    assert_eq!(out.stdout, b"1\n");
    touch(&env.path("go"));
    env.run_sh(&["--stale-after", "1h"], &script)
        .assert()
        .stdout("2\n");
    assert_eq!(env.runs(), 2);
}

fn overwrite_recomputes_a_fresh_entry(env: &Env) {
    let script = numbered();
    env.run_sh(&[], &script).assert().stdout("1\n");
    env.run_sh(&["--overwrite"], &script).assert().stdout("2\n");
    env.run_sh(&[], &script).assert().stdout("2\n");
}

fn skip_cache_and_disable_read_and_write_nothing(env: &Env) {
    let script = numbered();
    env.run_sh(&["--skip-cache"], &script)
        .assert()
        .stdout("1\n");
    env.run_sh(&["--skip-cache"], &script)
        .assert()
        .stdout("2\n");
    assert_eq!(env.count_entries(), 0);
    // With caching off no --input is read: a missing one is no error.
    env.run_sh(&["--input", "missing-file"], &script)
        .env("CACHIER_DISABLE", "1")
        .assert()
        .code(0)
        .stdout("3\n");
    env.run_sh(&[], &script)
        .env("CACHIER_DISABLE", "1")
        .assert()
        .stdout("4\n");
    assert_eq!(env.count_entries(), 0);
}

fn concurrent_callers_run_the_command_once(env: &Env) {
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

fn killed_owner_frees_waiters_at_once(env: &Env) {
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

fn wait_for_calc_timeout_gives_up_and_runs(env: &Env) {
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

fn signals_reach_the_command(env: &Env) {
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

fn command_killed_by_signal_exits_128_plus_n(env: &Env) {
    env.run_sh(&[], "echo $$ >> \"$COUNT\"; printf partial; kill -TERM $$")
        .assert()
        .code(143)
        .stdout("partial");
    env.run_sh(&["--cache-failures"], "kill -KILL $$")
        .assert()
        .code(137);
    assert_eq!(env.count_entries(), 0);
}

fn corrupted(env: &Env, truncate: bool) {
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

fn corrupt_entry_is_discarded_and_recomputed(env: &Env) {
    corrupted(env, false);
}

fn truncated_entry_is_discarded_and_recomputed(env: &Env) {
    corrupted(env, true);
}

fn strict_turns_a_corrupt_entry_into_exit_125(env: &Env) {
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

fn closed_stdout_on_miss_stores_nothing(env: &Env) {
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

fn closed_stdout_on_hit_exits_141(env: &Env) {
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

fn verbose_says_hit_or_miss(env: &Env) {
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

/// What `export` adds for a stack: how many entries came from each tier
/// (all from the first, which holds every entry).
fn from_tiers(env: &Env, n: usize) -> String {
    let parts: Vec<String> = env
        .backend
        .tier_names()
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{} from {t}", if i == 0 { n } else { 0 }))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

fn export_import_round_trips(env: &Env) {
    use crate::dump::{as_in, export, human, import};
    let mut blob: Vec<u8> = (0..=255u8).cycle().take(256 * 300).collect();
    blob.extend_from_slice(b"\xff\xfe\x00not utf-8 \xc3\x28");
    std::fs::write(env.path("blob"), &blob).unwrap();
    let cases: [(&[&str], String); 3] = [
        (
            &[],
            format!("{}; printf 'to stderr\\n' >&2", counted("hello\n")),
        ),
        (
            &["--cache-failures"],
            format!("{}; exit 3", counted("three")),
        ),
        (&[], "echo $$ >> \"$COUNT\"; cat blob; cat blob >&2".into()),
    ];
    let first: Vec<_> = cases
        .iter()
        .map(|(flags, script)| env.run_sh(flags, script).output().unwrap())
        .collect();
    assert_eq!(first[2].stdout, blob);
    assert_eq!(env.runs(), 3);
    let (dump, said) = export(env, &[]);
    let size = human(dump.len());
    assert_eq!(
        said,
        format!(
            "cachier: exported 3 entries ({size}){}\n",
            from_tiers(env, 3)
        )
    );

    let other = Env::new(env.backend);
    let out = import(&other, &dump);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("cachier: imported 3 entries ({size})\n")
    );
    assert_eq!(other.stat("total", "entries"), 3);
    // Hits there, byte for byte, and nothing ran again.
    for ((flags, script), then) in cases.iter().zip(&first) {
        let now = as_in(env, other.run_sh(flags, script)).output().unwrap();
        assert_eq!(now.status.code(), then.status.code(), "{script}");
        assert!(now.stdout == then.stdout, "stdout of {script}");
        assert!(now.stderr == then.stderr, "stderr of {script}");
    }
    assert_eq!(env.runs(), 3);
    // The entries kept their age.
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    let (dump, _) = export(env, &[]);
    let again = Env::new(env.backend);
    assert_eq!(import(&again, &dump).status.code(), Some(0));
    as_in(env, again.run_sh(&["--stale-after", "1h"], &cases[0].1))
        .assert()
        .stdout("hello\n");
    assert_eq!(env.runs(), 4, "an aged entry is stale after import too");
}

/// Run to completion, failing (not hanging) if the output pipes stay open.
fn output_within(mut cmd: std::process::Command) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the output pipes closed")
        .unwrap()
}

fn counters_follow_hits_misses_and_entries(env: &Env) {
    let script = counted("x");
    for _ in 0..3 {
        env.run_sh(&[], &script).assert().stdout("x");
    }
    env.run_sh(&["--name", "other"], &counted("y"))
        .assert()
        .stdout("y");
    assert_eq!(
        (
            env.stat("sh", "entries"),
            env.stat("sh", "hits"),
            env.stat("sh", "misses")
        ),
        (1, 2, 1)
    );
    assert!(env.stat("sh", "bytes") > 0);
    let stats = env.json(&["stats", "--json"]);
    assert_eq!(
        stats["namespaces"]["sh"]["hit_ratio"].as_f64(),
        Some(2.0 / 3.0)
    );
    assert_eq!(stats["total"]["entries"].as_u64(), Some(2));
    assert_eq!(stats["total"]["misses"].as_u64(), Some(2));
    let only = env.json(&["stats", "--json", "--name", "other"]);
    assert_eq!(only["total"]["entries"].as_u64(), Some(1));
    assert!(only["namespaces"]["sh"].is_null());
    // The human table: a header, one row per namespace, a total.
    let table = env.stdout(&["stats"]);
    let first: Vec<&str> = table
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    // A stack adds a table of each tier's totals.
    let mut want = vec!["NAMESPACE", "other", "sh", "total"];
    let tiers = env.backend.tier_names();
    if !tiers.is_empty() {
        want.extend(["", "TIER"]);
        want.extend(tiers);
    }
    assert_eq!(first, want, "{table}");
}

/// `clear`'s report; a stack adds what went from each tier, if anything went.
fn removed(env: &Env, n: usize) -> predicates::str::RegexPredicate {
    let noun = |n: usize| if n == 1 { "entry" } else { "entries" };
    let size = r"\((0 B|\d+ B|\d+\.\d [KM]iB)\)";
    let tiers: Vec<String> = env
        .backend
        .tier_names()
        .iter()
        .map(|t| format!("{t} {n} {} {size}", noun(n)))
        .collect();
    let per_tier = if tiers.is_empty() || n == 0 {
        String::new()
    } else {
        format!(": {}", tiers.join(", "))
    };
    predicates::str::is_match(format!("^removed {n} {} {size}{per_tier}\n$", noun(n))).unwrap()
}

fn clear_by_filter_or_command_line(env: &Env) {
    for text in ["a", "b", "c"] {
        env.run_sh(&["--name", "one"], &counted(text))
            .assert()
            .code(0);
    }
    env.run_sh(&["--name", "two"], &counted("d"))
        .assert()
        .code(0);
    env.run_sh(&["--name", "two"], &counted("e"))
        .assert()
        .code(0);
    assert_eq!(env.count_entries(), 5);
    // The entry one command line would hit, with the same key options.
    let mut args = vec!["clear", "--name", "one", "--", "sh", "-c"];
    let script = counted("a");
    args.push(&script);
    env.cachier(&args).assert().code(0).stdout(removed(env, 1));
    assert_eq!(env.count_entries(), 4);
    // By key prefix, as `ls` shows it.
    let listed = env.json(&["ls", "--json", "--name", "two"]);
    let key = listed[0]["key"].as_str().unwrap()[..10].to_string();
    env.cachier(&["clear", "--key", &key])
        .assert()
        .code(0)
        .stdout(removed(env, 1));
    env.cachier(&["clear", "--key", &key])
        .assert()
        .code(0)
        .stdout(removed(env, 0));
    env.cachier(&["clear", "--key", "xyz"])
        .assert()
        .code(2)
        .stdout("");
    // By age: nothing is older than an hour until it is aged.
    env.cachier(&["clear", "--older-than", "1h"])
        .assert()
        .code(0)
        .stdout(removed(env, 0));
    env.cachier(&["clear", "--stale"])
        .assert()
        .code(2)
        .stdout("");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(7200));
    env.run_sh(&["--name", "one"], &counted("fresh"))
        .assert()
        .code(0);
    env.cachier(&["clear", "--stale", "--stale-after", "1h", "--name", "two"])
        .assert()
        .code(0)
        .stdout(removed(env, 1));
    env.cachier(&["clear", "--older-than", "1h"])
        .assert()
        .code(0)
        .stdout(removed(env, 2));
    assert_eq!(env.count_entries(), 1);
    env.cachier(&["clear", "--being-calculated"])
        .assert()
        .code(0)
        .stdout("removed 0 entries (0 B); wiped 0 leftover claims\n");
    assert_eq!(env.count_entries(), 1);
    env.cachier(&["clear"])
        .assert()
        .code(0)
        .stdout(removed(env, 1));
    assert_eq!(env.count_entries(), 0);
    assert_eq!(env.stat("total", "entries"), 0);
    assert_eq!(env.stat("total", "bytes"), 0);
}

fn ls_and_show_report_entries(env: &Env) {
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(b"\xff\x00end");
    std::fs::write(env.path("blob"), &bytes).unwrap();
    let script = "echo $$ >> \"$COUNT\"; cat blob; printf 'err\\000bytes' >&2; exit 3";
    env.run_sh(&["--cache-exit-codes", "3"], script)
        .assert()
        .code(3);
    env.run_sh(&["--cache-exit-codes", "3"], script)
        .assert()
        .code(3);
    let listed = env.json(&["ls", "--json"]);
    let item = &listed[0];
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(item["namespace"], "sh");
    assert_eq!(item["argv"], serde_json::json!(["sh", "-c", script]));
    assert_eq!(item["exit_code"], 3);
    assert_eq!(item["hits"], 1);
    let key = item["key"].as_str().unwrap();
    assert_eq!(key.len(), 64);
    let out = env
        .cachier(&["show", &key[..8], "--stdout"])
        .output()
        .unwrap();
    assert_eq!((out.status.code(), out.stdout), (Some(0), bytes));
    env.cachier(&["show", key, "--stderr"])
        .assert()
        .code(0)
        .stdout(&b"err\0bytes"[..]);
    let meta = env.json(&["show", key, "--json"]);
    assert_eq!(
        (
            meta["key"].as_str(),
            meta["exit_code"].as_i64(),
            meta["stderr_bytes"].as_u64()
        ),
        (Some(key), Some(3), Some(9))
    );
    let table = env.stdout(&["ls"]);
    assert!(
        table.starts_with("KEY  ") && table.lines().nth(1).unwrap().starts_with(&key[..12]),
        "{table}"
    );
    env.cachier(&["show", "0000000000"])
        .assert()
        .code(2)
        .stdout("");
}

fn precache_is_served_by_run(env: &Env) {
    std::fs::write(env.path("out"), b"given\x00stdout").unwrap();
    std::fs::write(env.path("err"), b"given stderr\n").unwrap();
    let script = counted("never");
    let mut args = vec![
        "precache",
        "--stdout",
        "out",
        "--stderr",
        "err",
        "--exit-code",
        "4",
        "--",
        "sh",
        "-c",
    ];
    args.push(&script);
    let key = env
        .cachier(&args)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_eq!(key.len(), 65);
    env.run_sh(&["--cache-exit-codes", "4"], &script)
        .assert()
        .code(4)
        .stdout(&b"given\x00stdout"[..])
        .stderr("given stderr\n");
    assert_eq!(env.runs(), 0, "the command never ran");
}

fn stats_reset_keeps_entries(env: &Env) {
    let script = counted("r");
    env.run_sh(&[], &script).assert().code(0);
    env.run_sh(&[], &script).assert().code(0);
    env.cachier(&["stats", "--reset"]).assert().code(0);
    assert_eq!(
        (
            env.stat("sh", "hits"),
            env.stat("sh", "misses"),
            env.stat("sh", "entries")
        ),
        (0, 0, 1)
    );
    env.run_sh(&[], &script).assert().code(0);
    assert_eq!(env.stat("sh", "hits"), 1);
}

fn gc_evicts_least_recently_used(env: &Env) {
    for text in ["one", "two", "three"] {
        env.run_sh(&[], &counted(text)).assert().code(0);
    }
    env.run_sh(&[], &counted("one")).assert().stdout("one");
    let sizes: u64 = env
        .json(&["ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["size"].as_u64().unwrap())
        .sum();
    let cap = (sizes - 1).to_string();
    let out = env
        .cachier(&["gc", "--max-size", &cap])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .starts_with("evicted 1 entry (")
    );
    let left: Vec<String> = env
        .json(&["ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["argv"][2].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        left,
        [counted("three"), counted("one")],
        "the oldest unused entry went"
    );
    env.cachier(&["gc"])
        .assert()
        .code(0)
        .stdout(predicates::str::starts_with(
            "swept leftovers; no max_size is set",
        ));
}

fn a_store_over_max_size_is_collected_in_the_background(env: &Env) {
    env.run_sh(&[], &counted("big"))
        .env("CACHIER_MAX_SIZE", "1")
        .assert()
        .code(0)
        .stdout("big");
    await_until("the background gc empties the store", || {
        env.count_entries() == 0
    });
}

fn cleanup_stale_clears_the_namespace_in_the_background(env: &Env) {
    env.run_sh(&[], &counted("old")).assert().code(0);
    env.run_sh(&["--name", "elsewhere"], &counted("other"))
        .assert()
        .code(0);
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(7200));
    let flags = ["--cleanup-stale", "--stale-after", "1h"];
    env.run_sh(&flags, &counted("new"))
        .assert()
        .code(0)
        .stdout("new");
    await_until("the stale entry is cleared", || env.count_entries() == 2);
    let left: Vec<String> = env
        .json(&["ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["namespace"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["sh", "elsewhere"]);
}

fn a_mistyped_option_is_never_run_as_the_command(env: &Env) {
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
fn the_longest_durations_are_honoured(env: &Env) {
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
