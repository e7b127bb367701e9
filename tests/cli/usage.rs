//! Bad input: one line naming the problem and the fix, and the right exit code.
use assert_cmd::assert::OutputAssertExt;
use std::os::unix::fs::PermissionsExt;

use crate::harness::Env;

fn one_line_error(env: &Env, mut cmd: std::process::Command, code: i32, needle: &str) {
    let out = cmd.assert().code(code).stdout("").get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("cachier: ") && stderr.contains(needle),
        "{stderr:?} lacks {needle:?}"
    );
    assert_eq!(env.runs(), 0, "the command must not run");
}

#[test]
fn bad_duration_and_size_are_exit_2() {
    let env = Env::file();
    one_line_error(
        &env,
        env.run_sh(&["--stale-after", "5x"], "echo $$ >> \"$COUNT\""),
        2,
        "--stale-after",
    );
    one_line_error(
        &env,
        env.run_sh(&["--entry-size-limit", "lots"], "echo $$ >> \"$COUNT\""),
        2,
        "--entry-size-limit",
    );
    let mut cmd = env.run_sh(&[], "echo $$ >> \"$COUNT\"");
    cmd.env("CACHIER_STALE_AFTER", "soon");
    one_line_error(&env, cmd, 2, "CACHIER_STALE_AFTER");
}

#[test]
fn unknown_backend_is_exit_2() {
    let env = Env::file();
    one_line_error(
        &env,
        env.run_sh(&["--backend", "floppy"], "echo $$ >> \"$COUNT\""),
        2,
        "unknown backend `floppy`",
    );
    let mut cmd = env.run_sh(&[], "echo $$ >> \"$COUNT\"");
    cmd.env("CACHIER_BACKEND", "floppy");
    one_line_error(&env, cmd, 2, "CACHIER_BACKEND");
}

#[test]
fn missing_command_is_exit_2_naming_the_missing_argument() {
    let env = Env::file();
    one_line_error(
        &env,
        env.cachier(&["run"]),
        2,
        "the following required arguments were not provided: <CMD>... (see --help)",
    );
}

#[test]
fn a_mistyped_option_is_an_unknown_option_never_the_command() {
    let env = Env::file();
    std::fs::write(env.path("x.sh"), "#!/bin/sh\necho $$ >> \"$COUNT\"\n").unwrap();
    std::fs::set_permissions(env.path("x.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (args, typo, real) in [
        (
            &["run", "--stale-afer", "1h", "--", "./x.sh"][..],
            "--stale-afer",
            "--stale-after",
        ),
        (&["run", "--no-emty", "./x.sh"], "--no-emty", "--no-empty"),
        (
            &["key", "--inptu", "f", "--", "./x.sh"],
            "--inptu",
            "--input",
        ),
        (
            &["precache", "--stdout", "-", "--nmae", "n", "--", "./x.sh"],
            "--nmae",
            "--name",
        ),
    ] {
        let mut cmd = env.cachier(args);
        cmd.env("COUNT", env.path("count"));
        one_line_error(
            &env,
            cmd,
            2,
            &format!(
                "unexpected argument '{typo}' found; tip: a similar argument exists: '{real}'"
            ),
        );
    }
}

#[test]
fn words_after_the_command_are_its_own_even_without_dashdash() {
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; echo \"$0 $1\"";
    for _ in 0..2 {
        let mut cmd = env.cachier(&["run", "sh", "-c", script, "-la", "--stale-afer"]);
        cmd.env("COUNT", env.path("count"));
        cmd.assert().code(0).stdout("-la --stale-afer\n").stderr("");
    }
    assert_eq!(env.runs(), 1, "the second run was a hit");
}

#[test]
fn cachier_alone_prints_the_usage_and_exits_2() {
    let env = Env::file();
    let out = env
        .cachier(&[])
        .assert()
        .code(2)
        .stdout("")
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("Usage: cachier [OPTIONS] <COMMAND>"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\n  run "),
        "lists the subcommands: {stderr}"
    );
    assert!(
        stderr.contains("exit code at once"),
        "the about text is whole, not cut: {stderr}"
    );
}

#[test]
fn run_help_groups_its_options_under_headings() {
    let env = Env::file();
    let help = env.stdout(&["run", "--help"]);
    let headings: Vec<&str> = help
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect();
    assert_eq!(
        headings,
        [
            "Arguments:",
            "Options:",
            "Backend:",
            "Key (what makes two runs the same):",
            "Freshness:",
            "What is stored:",
            "Waiting:",
        ],
        "{help}"
    );
    let section = |name: &str| -> String {
        help.split(&format!("\n{name}:\n"))
            .nth(1)
            .unwrap_or_default()
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    for (heading, options) in [
        (
            "Backend",
            &["--backend", "--sql-url", "--redis-url", "--mongo-url"][..],
        ),
        (
            "Key (what makes two runs the same)",
            &["--env", "--input", "--stdin", "--key", "--no-cwd"],
        ),
        (
            "Freshness",
            &["--stale-after", "--max-age", "--next-time", "--overwrite"],
        ),
        (
            "What is stored",
            &[
                "--cache-exit-codes",
                "--cache-failures",
                "--no-empty",
                "--entry-size-limit",
            ],
        ),
        ("Waiting", &["--wait-for-calc-timeout"]),
    ] {
        let text = section(heading);
        for option in options {
            assert!(
                text.contains(&format!("{option} ")),
                "{option} under {heading}: {help}"
            );
        }
    }
}

#[test]
fn durations_and_sizes_out_of_range_are_exit_2_naming_the_range() {
    let env = Env::file();
    let huge = "18446744073709551615";
    for flag in ["--stale-after", "--max-age", "--wait-for-calc-timeout"] {
        one_line_error(
            &env,
            env.run_sh(&[flag, huge], "echo $$ >> \"$COUNT\""),
            2,
            "is out of range: a duration must be between 0s and 100 years",
        );
    }
    one_line_error(
        &env,
        env.run_sh(&["--stale-after", "101y"], "echo $$ >> \"$COUNT\""),
        2,
        "between 0s and 100 years",
    );
    one_line_error(
        &env,
        env.run_sh(&["--entry-size-limit", huge], "echo $$ >> \"$COUNT\""),
        2,
        "is out of range: a size must be between 0 and 1P",
    );
    let mut cmd = env.run_sh(&[], "echo $$ >> \"$COUNT\"");
    cmd.env("CACHIER_WAIT_FOR_CALC_TIMEOUT", huge);
    one_line_error(&env, cmd, 2, "CACHIER_WAIT_FOR_CALC_TIMEOUT");
    // TOML integers stop at i64::MAX.
    std::fs::write(
        env.path("config.toml"),
        "stale_after = 9223372036854775807\n",
    )
    .unwrap();
    let out = env
        .run_sh(&[], "echo $$ >> \"$COUNT\"")
        .assert()
        .code(125)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("config.toml:1") && stderr.contains("out of range"),
        "{stderr}"
    );
    assert_eq!(env.runs(), 0);
}

#[test]
fn not_found_is_127_and_not_executable_is_126() {
    let env = Env::file();
    one_line_error(
        &env,
        env.cachier(&["run", "--", "no-such-command-xyz"]),
        127,
        "command not found: no-such-command-xyz",
    );
    std::fs::write(env.path("script"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(env.path("script"), std::fs::Permissions::from_mode(0o644)).unwrap();
    one_line_error(
        &env,
        env.cachier(&["run", "--", "./script"]),
        126,
        "cannot execute ./script",
    );
}

#[test]
fn unusable_cache_dir_runs_uncached_with_one_warning() {
    let env = Env::file();
    std::fs::write(env.path("not-a-dir"), "").unwrap();
    for _ in 0..2 {
        let out = env
            .run_sh(&[], "echo $$ >> \"$COUNT\"; echo out; echo err >&2; exit 5")
            .env("CACHIER_DIR", env.path("not-a-dir/cache"))
            .args(["--cache-exit-codes", "5"])
            .assert()
            .code(5)
            .stdout("out\n")
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.starts_with("cachier: warning: cannot ") && stderr.contains("not-a-dir/cache"),
            "{stderr}"
        );
        assert!(
            stderr.contains("running uncached (fix the cache"),
            "{stderr}"
        );
        assert!(
            stderr.ends_with("err\n") && stderr.lines().count() == 2,
            "{stderr}"
        );
    }
    assert_eq!(env.runs(), 2);
    let mut strict = env.run_sh(&["--strict"], "echo $$ >> \"$COUNT\"");
    strict.env("CACHIER_DIR", env.path("not-a-dir/cache"));
    let out = strict.assert().code(125).get_output().clone();
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("(--strict)")
    );
}

#[test]
fn cache_files_are_private() {
    let env = Env::file();
    env.run_sh(&[], "echo $$ >> \"$COUNT\"; echo hi")
        .assert()
        .code(0);
    for entry in walk(&env.path("cache")) {
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        let want = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", entry.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn full_disk_passes_the_output_through_unstored() {
    use std::os::unix::process::CommandExt;
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; head -c 100000 /dev/zero | tr '\\0' a; echo done >&2";
    let mut cmd = env.run_sh(&[], script);
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
    let out = cmd.assert().code(0).get_output().clone();
    assert!(
        out.stdout.len() == 100_000 && out.stdout.iter().all(|&b| b == b'a'),
        "stdout intact"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("cachier: warning: cannot write the cache entry"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("--cache-dir)\ndone\n") && stderr.lines().count() == 2,
        "{stderr}"
    );
    assert_eq!(env.count_entries(), 0);
}

#[test]
fn path_prints_where_the_cache_lives() {
    let env = Env::file();
    let want = format!("{}\n", env.path("cache").display());
    assert_eq!(env.stdout(&["path"]), want);
    let elsewhere = env.path("elsewhere");
    let flag = elsewhere.to_str().unwrap();
    assert_eq!(
        env.stdout(&["--cache-dir", flag, "path"]),
        format!("{flag}\n")
    );
}
