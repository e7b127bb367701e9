//! Cases only a stack of backends has: fills, per-tier freshness, a tier
//! down, single-flight through the shared tier, and naming tiers.
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::backend::Backend;
use crate::harness::*;

const NUMBERED: &str = "echo $$ >> \"$COUNT\"; wc -l < \"$COUNT\" | tr -d ' '";

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn a_hit_in_the_last_tier_fills_the_first() {
    let env = Env::new(Backend::FileSql);
    env.run_sh(&[], NUMBERED).assert().code(0).stdout("1\n");
    // Empty the first tier only: the entry is left in sql alone.
    env.cachier(&["clear", "--tier", "file"])
        .assert()
        .code(0)
        .stdout(predicates::str::starts_with("removed 1 entry"));
    assert_eq!(Backend::File.count_entries(env.dir.path()), 0);
    // Reading it (show) is no hit: nothing is copied up.
    let key = env.json(&["ls", "--json"])[0]["key"]
        .as_str()
        .unwrap()
        .to_string();
    env.cachier(&["show", &key, "--stdout"])
        .assert()
        .code(0)
        .stdout("1\n");
    assert_eq!(Backend::File.count_entries(env.dir.path()), 0);
    let out = env.run_sh(&["-v"], NUMBERED).output().unwrap();
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"1\n"[..]));
    let said = stderr_of(&out);
    assert!(
        said.starts_with("cachier: tier sql served ") && said.contains("; copied into file\n"),
        "{said}"
    );
    // The next run is served by the first tier.
    let out = env.run_sh(&["-v"], NUMBERED).output().unwrap();
    assert_eq!(out.stdout, b"1\n");
    let said = stderr_of(&out);
    assert!(said.starts_with("cachier: tier file served "), "{said}");
    assert!(!said.contains("copied"), "{said}");
    assert_eq!(env.runs(), 1);
    assert_eq!(Backend::File.count_entries(env.dir.path()), 1);
}

#[test]
fn each_tier_judges_freshness_by_its_own_stale_after() {
    let env = Env::new(Backend::FileSql);
    std::fs::write(
        env.path("config.toml"),
        "[tiers.file]\nstale_after = \"1m\"\n\n[tiers.sql]\nstale_after = \"1d\"\n",
    )
    .unwrap();
    env.run_sh(&[], NUMBERED).assert().stdout("1\n");
    // Stale for the file tier, fresh for sql: sql serves and refills file.
    Backend::File.age_entries(env.dir.path(), Duration::from_secs(120));
    let out = env.run_sh(&["-v"], NUMBERED).output().unwrap();
    assert_eq!(out.stdout, b"1\n");
    let said = stderr_of(&out);
    assert!(
        said.starts_with("cachier: tier sql served ") && said.contains("copied into file"),
        "{said}"
    );
    // Older than the file tier's bound in every tier: sql serves it but
    // does not copy it into a tier that would never serve it.
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(120));
    let out = env.run_sh(&["-v"], NUMBERED).output().unwrap();
    assert_eq!(out.stdout, b"1\n");
    let said = stderr_of(&out);
    assert!(
        said.starts_with("cachier: tier sql served ") && !said.contains("copied"),
        "{said}"
    );
    // Stale everywhere: run again.
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 86400));
    env.run_sh(&[], NUMBERED).assert().stdout("2\n");
    assert_eq!(env.runs(), 2);
}

/// One line: the warning that `tier` failed and was skipped.
fn skipped(out: &std::process::Output, tier: &str) {
    let said = stderr_of(out);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.starts_with(&format!("cachier: warning: tier {tier}: "))
            && said.ends_with("; skipping it, the other tiers still serve\n")
            && !said.contains("hunter2"),
        "{said}"
    );
}

#[test]
fn a_tier_that_is_down_is_skipped_with_one_warning() {
    let env = Env::new(Backend::FileSql);
    // The deepest tier down (nothing listens on port 1): the file tier
    // stores, then serves without asking sql.
    let down = "postgresql://cachier:hunter2@127.0.0.1:1/nowhere";
    let run = || {
        env.run_sh(&[], NUMBERED)
            .env("CACHIER_SQL_URL", down)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"1\n"[..]));
    skipped(&out, "sql");
    env.run_sh(&[], NUMBERED)
        .env("CACHIER_SQL_URL", down)
        .assert()
        .code(0)
        .stdout("1\n")
        .stderr("");
    // --strict makes a tier's failure an error.
    let out = env
        .run_sh(&["--strict", "--overwrite"], NUMBERED)
        .env("CACHIER_SQL_URL", down)
        .output()
        .unwrap();
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(125), &b""[..]));
    assert!(
        stderr_of(&out).starts_with("cachier: tier sql: "),
        "{}",
        stderr_of(&out)
    );

    // The first tier down (its directory is a file): sql stores and serves.
    let other = Env::new(Backend::FileSql);
    std::fs::write(other.path("cache"), b"not a directory").unwrap();
    let sql = format!("sqlite://{}", other.path("cache.db").display());
    for want in ["1\n", "1\n"] {
        let out = other
            .run_sh(&[], NUMBERED)
            .env("CACHIER_SQL_URL", &sql)
            .output()
            .unwrap();
        assert_eq!(
            (out.status.code(), &out.stdout[..]),
            (Some(0), want.as_bytes())
        );
        skipped(&out, "file");
    }
    assert_eq!(other.runs(), 1);
}

#[test]
fn processes_sharing_only_the_deepest_tier_run_the_command_once() {
    let env = Env::new(Backend::FileSql);
    let shared = format!("sqlite://{}", env.path("shared.db").display());
    let script = format!("echo $$ >> \"$COUNT\"; {}; echo done", until_go());
    // Each process has its own file tier; only the sql tier is shared.
    let on = |dir: &str| {
        let mut cmd = env.run_sh(&["-v"], &script);
        cmd.env("CACHIER_DIR", env.path(dir))
            .env("CACHIER_SQL_URL", &shared);
        cmd
    };
    let (owner, _owner_lines) = spawn_watching_stderr(on("a"));
    await_until("the owner runs the command", || env.runs() == 1);
    let (waiter, lines) = spawn_watching_stderr(on("b"));
    expect_line(&lines, "waiting for");
    touch(&env.path("go"));
    for child in [owner, waiter] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            (out.status.code(), &out.stdout[..]),
            (Some(0), &b"done\n"[..])
        );
    }
    assert_eq!(env.runs(), 1);
    // The waiter copied the result into its own first tier.
    let out = on("b").output().unwrap();
    assert!(stderr_of(&out).starts_with("cachier: tier file served "));
}

#[test]
fn tiers_are_named_in_config_and_checked() {
    let env = Env::new(Backend::File);
    std::fs::write(env.path("config.toml"), "backend = [\"file\", \"sql\"]\n").unwrap();
    env.run_sh(&[], NUMBERED).assert().stdout("1\n");
    let listed = env.json(&["ls", "--json"]);
    // The test's CACHIER_BACKEND=file wins over the file; a flag wins over both.
    assert!(listed[0].get("tiers").is_none(), "{listed}");
    let listed = env.json(&["--backend", "file,sql", "ls", "--json"]);
    assert_eq!(listed[0]["tiers"], serde_json::json!(["file"]));
    let only_sql = env.json(&["--backend", "file,sql", "--tier", "sql", "ls", "--json"]);
    assert_eq!(only_sql, serde_json::json!([]));
    env.cachier(&["--backend", "file,sql", "--tier", "redis", "ls"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            "cachier: --tier redis: not a tier of the backend stack file,sql; name one of them\n",
        );
    env.cachier(&["--backend", "file,sql,file", "ls"])
        .assert()
        .code(2)
        .stderr("cachier: --backend: backend `file` is listed twice; name each tier once\n");
    env.cachier(&["--backend", "file,,sql", "ls"])
        .assert()
        .code(2)
        .stderr(
            "cachier: --backend: `file,,sql` has an empty backend name; write e.g. \
             memory,redis,sql\n",
        );
    // `path` names each tier's place.
    let path = env.stdout(&["--backend", "file,sql", "path"]);
    let names: Vec<&str> = path.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(names, ["file", "sql"], "{path}");
}
