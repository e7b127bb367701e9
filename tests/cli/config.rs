//! The config file: `cachier config` edits it, every command reads it, and
//! flags and variables win over it.
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::Env;

const KNOWN: &str = "known keys: backend, cache_dir, stale_after, wait_for_calc_timeout, \
    entry_size_limit, max_size, cleanup_stale, cleanup_interval, enabled, read_only, retry_after, signing_key_file, compression, pool, watch, sql_url, redis_url, \
    redis_prefix, mongo_url, mongo_collection, s3_url, s3_endpoint, s3_addressing, max_memory, idle_timeout, tiers";

const NOT_A_DURATION: &str = "`5x` is not a duration (unknown time unit \"x\", supported units: \
    ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write e.g. \
    90s, 15m, 1h or 2d";

/// A script that counts itself and prints how many times it has run.
const NUMBERED: &str = "echo $$ >> \"$COUNT\"; wc -l < \"$COUNT\" | tr -d ' '";

fn config(env: &Env, args: &[&str], code: i32, stdout: &str) {
    let mut all = vec!["config"];
    all.extend_from_slice(args);
    env.cachier(&all)
        .assert()
        .code(code)
        .stdout(stdout.to_owned())
        .stderr("");
}

fn write_config(env: &Env, text: &str) {
    std::fs::write(env.path("config.toml"), text).unwrap();
}

fn read_config(env: &Env) -> String {
    std::fs::read_to_string(env.path("config.toml")).unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn set_get_unset_list_round_trip() {
    let env = Env::file();
    config(&env, &["get", "stale_after"], 1, "");
    config(&env, &["list"], 0, "");
    config(&env, &["set", "stale_after", "1h"], 0, "");
    config(&env, &["set", "cleanup_stale", "yes"], 0, "");
    config(&env, &["set", "max_size", "50M"], 0, "");
    config(
        &env,
        &["set", "redis_url", "redis://127.0.0.1:6379/0"],
        0,
        "",
    );
    config(&env, &["set", "stale_after", "2h"], 0, "");
    config(&env, &["get", "stale_after"], 0, "2h\n");
    config(&env, &["get", "cleanup_stale"], 0, "true\n");
    let listed = "stale_after = \"2h\"\ncleanup_stale = true\nmax_size = \"50M\"\n\
                  redis_url = \"redis://127.0.0.1:6379/0\"\n";
    config(&env, &["list"], 0, listed);
    assert_eq!(read_config(&env), listed, "the file is the same TOML");
    assert_eq!(mode(&env.path("config.toml")), 0o600);
    config(&env, &["unset", "cleanup_stale"], 0, "");
    config(&env, &["unset", "cleanup_stale"], 0, "");
    config(&env, &["get", "cleanup_stale"], 1, "");
    config(
        &env,
        &["list"],
        0,
        "stale_after = \"2h\"\nmax_size = \"50M\"\nredis_url = \"redis://127.0.0.1:6379/0\"\n",
    );
}

#[test]
fn set_creates_a_private_file_in_a_private_dir() {
    let env = Env::file();
    let path = env.path("conf/cachier/config.toml");
    env.cachier(&["config", "set", "enabled", "false"])
        .env("CACHIER_CONFIG", &path)
        .assert()
        .code(0);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "enabled = false\n");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&env.path("conf/cachier")), 0o700);
}

#[test]
fn edits_keep_comments_layout_and_order() {
    let env = Env::file();
    write_config(
        &env,
        "# cachier settings\nbackend = \"file\"\n\n# freshness\n\
         stale_after  =  '1h'   # hourly\ncleanup_stale = true\n",
    );
    config(&env, &["set", "stale_after", "30m"], 0, "");
    config(&env, &["unset", "backend"], 0, "");
    config(&env, &["set", "entry_size_limit", "1M"], 0, "");
    assert_eq!(
        read_config(&env),
        "# cachier settings\n\n# freshness\nstale_after  =  \"30m\"   # hourly\n\
         cleanup_stale = true\nentry_size_limit = \"1M\"\n"
    );
}

#[test]
fn a_symlinked_file_is_edited_in_place() {
    let env = Env::file();
    std::fs::write(env.path("real.toml"), "enabled = true\n").unwrap();
    std::os::unix::fs::symlink(env.path("real.toml"), env.path("config.toml")).unwrap();
    config(&env, &["set", "enabled", "false"], 0, "");
    assert!(env.path("config.toml").is_symlink());
    assert_eq!(
        std::fs::read_to_string(env.path("real.toml")).unwrap(),
        "enabled = false\n"
    );
}

#[test]
fn set_checks_the_value_and_leaves_the_file_alone() {
    let env = Env::file();
    let rejected = [
        (
            "stale_after",
            "5x",
            format!("stale_after: {NOT_A_DURATION}"),
        ),
        (
            "cleanup_stale",
            "maybe",
            "cleanup_stale: `maybe` is not a boolean; write true or false".into(),
        ),
        (
            "backend",
            "floppy",
            "backend: unknown backend `floppy`; choose one of: file (alias pickle), sql, redis, mongo (alias mongodb), s3, memory".into(),
        ),
        (
            "cache_dir",
            "rel",
            "cache_dir: `rel` is a relative path; write an absolute one, or one starting with ~/"
                .into(),
        ),
    ];
    for (key, value, message) in &rejected {
        env.cachier(&["config", "set", key, value])
            .assert()
            .code(2)
            .stdout("")
            .stderr(format!("cachier: {message}\n"));
    }
    assert!(!env.path("config.toml").exists(), "no file created");
    write_config(&env, "# mine\nstale_after = \"1h\"\n");
    env.cachier(&["config", "set", "stale_after", "5x"])
        .assert()
        .code(2)
        .stderr(format!("cachier: stale_after: {NOT_A_DURATION}\n"));
    assert_eq!(read_config(&env), "# mine\nstale_after = \"1h\"\n");
}

#[test]
fn unknown_keys_are_exit_2_and_listed() {
    let env = Env::file();
    for args in [
        &["get", "ttl"][..],
        &["set", "ttl", "1h"],
        &["unset", "ttl"],
    ] {
        let mut all = vec!["config"];
        all.extend_from_slice(args);
        env.cachier(&all)
            .assert()
            .code(2)
            .stdout("")
            .stderr(format!("cachier: unknown key `ttl`; {KNOWN}\n"));
    }
    env.cachier(&["config", "set", "stale-after", "1h"])
        .assert()
        .code(2)
        .stderr(format!(
            "cachier: unknown key `stale-after` (did you mean `stale_after`?); {KNOWN}\n"
        ));
}

#[test]
fn file_stale_after_then_variable_then_flag() {
    let env = Env::file();
    write_config(&env, "stale_after = \"1h\"\n");
    env.run_sh(&[], NUMBERED).assert().stdout("1\n");
    env.run_sh(&[], NUMBERED).assert().stdout("1\n");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    // The variable beats the file: 3h keeps the 2h-old entry fresh.
    env.run_sh(&[], NUMBERED)
        .env("CACHIER_STALE_AFTER", "3h")
        .assert()
        .stdout("1\n");
    // The flag beats the variable.
    env.run_sh(&["--stale-after", "1h"], NUMBERED)
        .env("CACHIER_STALE_AFTER", "3h")
        .assert()
        .stdout("2\n");
    env.run_sh(&[], NUMBERED).assert().stdout("2\n");
    // The file alone makes the entry stale.
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    env.run_sh(&[], NUMBERED).assert().stdout("3\n");
}

#[test]
fn enabled_false_in_the_file_is_a_pass_through() {
    let env = Env::file();
    write_config(&env, "enabled = false\n");
    env.run_sh(&[], NUMBERED).assert().code(0).stdout("1\n");
    env.run_sh(&[], NUMBERED).assert().code(0).stdout("2\n");
    assert_eq!(env.count_entries(), 0);
    // CACHIER_DISABLE=0 beats the file.
    for want in ["3\n", "3\n"] {
        env.run_sh(&[], NUMBERED)
            .env("CACHIER_DISABLE", "0")
            .assert()
            .stdout(want);
    }
    assert_eq!(env.count_entries(), 1);
}

#[test]
fn cache_dir_in_the_file_is_used_unless_the_variable_is_set() {
    let env = Env::file();
    let elsewhere = env.path("elsewhere");
    write_config(
        &env,
        &format!("cache_dir = {:?}\n", elsewhere.display().to_string()),
    );
    env.run_sh(&[], NUMBERED)
        .env_remove("CACHIER_DIR")
        .assert()
        .stdout("1\n");
    assert_eq!(
        std::fs::read_dir(elsewhere.join("entries"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(env.count_entries(), 0, "CACHIER_DIR's cache is untouched");
    env.run_sh(&[], NUMBERED).assert().stdout("2\n");
    assert_eq!(env.count_entries(), 1, "CACHIER_DIR beats the file");
}

#[test]
fn default_location_is_under_xdg_config_home() {
    let env = Env::file();
    let xdg = |mut cmd: std::process::Command| {
        cmd.env_remove("CACHIER_CONFIG")
            .env("XDG_CONFIG_HOME", env.path("xdg"));
        cmd
    };
    xdg(env.cachier(&["config", "set", "enabled", "false"]))
        .assert()
        .code(0);
    let file = env.path("xdg/cachier/config.toml");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "enabled = false\n");
    assert_eq!(mode(&env.path("xdg/cachier")), 0o700);
    for want in ["1\n", "2\n"] {
        xdg(env.run_sh(&[], NUMBERED)).assert().stdout(want);
    }
    assert_eq!(env.count_entries(), 0);
}

#[test]
fn a_bad_file_is_exit_125_naming_file_and_line_and_nothing_runs() {
    let env = Env::file();
    let path = env.path("config.toml").display().to_string();
    let cases = [
        (
            "# mine\n\nstale_after = \"5x\"\n",
            format!("3: stale_after: {NOT_A_DURATION}"),
        ),
        (
            "enabled = true\nmax_size = \"lots\"\n",
            "2: max_size: `lots` is not a size (invalid digit found in string); write e.g. \
             512K, 50M or 2G"
                .into(),
        ),
        (
            "enabled = \"no\"\n",
            "1: enabled: expected true or false, found string \"no\"".into(),
        ),
        (
            "backend = [\"file\", \"pickle\"]\n",
            "1: backend: backend `file` is listed twice; name each tier once".into(),
        ),
        (
            "backend = [\"file\", \"sql\"]\n\n[tiers.floppy]\nstale_after = \"1m\"\n",
            "3: tiers: [tiers.floppy]: unknown backend `floppy`; choose one of: file (alias \
             pickle), sql, redis, mongo (alias mongodb), s3, memory"
                .into(),
        ),
        (
            "[tiers.sql]\nstale_after = \"1m\"\ncolour = \"red\"\n",
            "1: tiers: tiers.sql.colour: unknown key; a tier takes stale_after, url and read_only"
                .into(),
        ),
        (
            "[tiers.file]\nurl = \"x\"\n",
            "1: tiers: tiers.file.url: the file tier has no url (only sql, redis, mongo \
             and s3 tiers do)"
                .into(),
        ),
        (
            "stale_after = \"1h\"\nbogus = 1\n",
            format!("2: unknown key `bogus` (remove it: cachier config unset bogus); {KNOWN}"),
        ),
        (
            "stale_after = \"1h\"\n\nenabled = = true\n",
            "3: not valid TOML: extra `=`, expected nothing".into(),
        ),
    ];
    for (text, message) in &cases {
        write_config(&env, text);
        // Even a value a variable overrides: the file is wrong either way.
        env.run_sh(&[], NUMBERED)
            .env("CACHIER_STALE_AFTER", "1m")
            .assert()
            .code(125)
            .stdout("")
            .stderr(format!("cachier: {path}:{message}\n"));
    }
    assert_eq!(env.runs(), 0);
}

#[test]
fn config_fixes_a_file_the_loader_rejects() {
    let env = Env::file();
    write_config(&env, "stale_after = \"5x\"\nbogus = 1\n");
    env.run_sh(&[], NUMBERED).assert().code(125);
    config(&env, &["set", "stale_after", "1h"], 0, "");
    config(&env, &["unset", "bogus"], 0, "");
    assert_eq!(read_config(&env), "stale_after = \"1h\"\n");
    env.run_sh(&[], NUMBERED).assert().code(0).stdout("1\n");
}

#[test]
fn a_bad_variable_is_exit_2_naming_it() {
    let env = Env::file();
    env.run_sh(&[], NUMBERED)
        .env("CACHIER_CLEANUP_STALE", "maybe")
        .assert()
        .code(2)
        .stdout("")
        .stderr("cachier: CACHIER_CLEANUP_STALE: `maybe` is not a boolean; write true or false\n");
    assert_eq!(env.runs(), 0);
}
