//! `cachier key`: what makes two invocations the same, and `--explain`.
use assert_cmd::assert::OutputAssertExt;

use crate::harness::Env;

pub fn key_of(env: &Env, args: &[&str], vars: &[(&str, Option<&str>)]) -> String {
    let mut full = vec!["key"];
    full.extend_from_slice(args);
    let mut cmd = env.cachier(&full);
    for (name, value) in vars {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let out = cmd.assert().code(0).get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.len(), 65, "64 hex digits and a newline: {text:?}");
    assert!(text.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));
    text
}

#[test]
fn arguments_are_framed() {
    let env = Env::file();
    assert_ne!(
        key_of(&env, &["--", "echo", "a b"], &[]),
        key_of(&env, &["--", "echo", "a", "b"], &[])
    );
    assert_eq!(
        key_of(&env, &["--", "echo", "a"], &[]),
        key_of(&env, &["echo", "a"], &[])
    );
}

#[test]
fn unset_differs_from_empty() {
    let env = Env::file();
    let args = ["--env", "FOO", "--", "true"];
    let unset = key_of(&env, &args, &[("FOO", None)]);
    let empty = key_of(&env, &args, &[("FOO", Some(""))]);
    let set = key_of(&env, &args, &[("FOO", Some("x"))]);
    assert_ne!(unset, empty);
    assert_ne!(empty, set);
    assert_eq!(set, key_of(&env, &args, &[("FOO", Some("x"))]));
    // Without --env the variable plays no part.
    assert_eq!(
        key_of(&env, &["--", "true"], &[("FOO", Some("x"))]),
        key_of(&env, &["--", "true"], &[("FOO", Some("y"))])
    );
}

#[test]
fn env_globs_match_names() {
    let env = Env::file();
    let args = ["--env", "AWS_*", "--", "true"];
    let one = key_of(&env, &args, &[("AWS_A", Some("1")), ("AWS_B", None)]);
    assert_ne!(
        one,
        key_of(&env, &args, &[("AWS_A", Some("2")), ("AWS_B", None)])
    );
    assert_ne!(
        one,
        key_of(&env, &args, &[("AWS_A", Some("1")), ("AWS_B", Some(""))])
    );
    assert_eq!(
        one,
        key_of(
            &env,
            &args,
            &[("AWS_A", Some("1")), ("AWS_B", None), ("OTHER", Some("z"))]
        )
    );
}

#[test]
fn all_env_ignores_volatile_variables() {
    let env = Env::file();
    let args = ["--all-env", "--", "true"];
    let base = key_of(
        &env,
        &args,
        &[
            ("PWD", Some("/a")),
            ("SHLVL", Some("1")),
            ("MY_VAR", Some("1")),
        ],
    );
    assert_eq!(
        base,
        key_of(
            &env,
            &args,
            &[
                ("PWD", Some("/b")),
                ("SHLVL", Some("2")),
                ("MY_VAR", Some("1"))
            ]
        )
    );
    assert_ne!(
        base,
        key_of(
            &env,
            &args,
            &[
                ("PWD", Some("/a")),
                ("SHLVL", Some("1")),
                ("MY_VAR", Some("2"))
            ]
        )
    );
}

#[test]
fn cwd_counts_unless_no_cwd() {
    let env = Env::file();
    std::fs::create_dir(env.path("sub")).unwrap();
    let here = key_of(&env, &["--", "true"], &[]);
    let there = env
        .cachier(&["key", "--", "true"])
        .current_dir(env.path("sub"))
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_ne!(here.as_bytes(), there.as_slice());
    let a = key_of(&env, &["--no-cwd", "--", "true"], &[]);
    let b = env
        .cachier(&["key", "--no-cwd", "--", "true"])
        .current_dir(env.path("sub"))
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_eq!(a.as_bytes(), b.as_slice());
}

#[test]
fn inputs_files_dirs_and_globs() {
    let env = Env::file();
    std::fs::create_dir_all(env.path("data/deep")).unwrap();
    std::fs::write(env.path("data/a.csv"), "1").unwrap();
    std::fs::write(env.path("data/deep/b.csv"), "2").unwrap();
    for args in [
        ["--input", "data/a.csv"],
        ["--input", "data"],
        ["--input", "data/*.csv"],
    ] {
        let mut full = args.to_vec();
        full.extend(["--", "true"]);
        let before = key_of(&env, &full, &[]);
        std::fs::write(env.path("data/a.csv"), "changed").unwrap();
        assert_ne!(before, key_of(&env, &full, &[]), "{args:?}");
        std::fs::write(env.path("data/a.csv"), "1").unwrap();
        assert_eq!(before, key_of(&env, &full, &[]), "{args:?}");
    }
    let whole = key_of(&env, &["--input", "data", "--", "true"], &[]);
    std::fs::write(env.path("data/deep/b.csv"), "3").unwrap();
    assert_ne!(
        whole,
        key_of(&env, &["--input", "data", "--", "true"], &[]),
        "nested files count"
    );
}

#[test]
fn missing_input_is_exit_2_and_nothing_runs() {
    let env = Env::file();
    for spec in ["nope.txt", "nope/*.csv"] {
        let out = env
            .run_sh(&["--input", spec], "echo $$ >> \"$COUNT\"")
            .assert()
            .code(2)
            .stdout("")
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("cachier: --input `{spec}`"))
                && stderr.contains("did not run"),
            "{stderr}"
        );
    }
    assert_eq!(env.runs(), 0);
}

#[test]
fn stdin_extra_keys_and_name_change_the_key() {
    let env = Env::file();
    let base = key_of(&env, &["--", "cat"], &[]);
    assert_ne!(base, key_of(&env, &["--key", "v1", "--", "cat"], &[]));
    assert_ne!(
        key_of(&env, &["--key", "v1", "--", "cat"], &[]),
        key_of(&env, &["--key", "v2", "--", "cat"], &[])
    );
    assert_ne!(base, key_of(&env, &["--name", "other", "--", "cat"], &[]));
    let with_stdin = |text: &str| {
        std::fs::write(env.path("in"), text).unwrap();
        let input = std::fs::File::open(env.path("in")).unwrap();
        env.cachier(&["key", "--stdin", "--", "cat"])
            .stdin(input)
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone()
    };
    assert_eq!(with_stdin("a"), with_stdin("a"));
    assert_ne!(with_stdin("a"), with_stdin("b"));
}

#[test]
fn explain_lists_components_and_what_changed() {
    let env = Env::file();
    env.cachier(&["run", "--env", "TOKEN", "--", "echo", "hi"])
        .env("TOKEN", "supersecret-1")
        .assert()
        .code(0)
        .stdout("hi\n");
    let out = env
        .cachier(&["key", "--explain", "--env", "TOKEN", "--", "echo", "hi"])
        .env("TOKEN", "supersecret-2")
        .assert()
        .code(0)
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("supersecret"),
        "an env value was printed:\n{text}"
    );
    for label in ["key ", "name ", "argv ", "cwd ", "env TOKEN "] {
        assert!(
            text.lines().any(|l| l.starts_with(label)),
            "no {label:?} line in:\n{text}"
        );
    }
    assert!(
        text.contains("differs in:\n  env TOKEN: changed\n"),
        "{text}"
    );
    let same = env
        .cachier(&["key", "--explain", "--env", "TOKEN", "--", "echo", "hi"])
        .env("TOKEN", "supersecret-1")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert!(
        String::from_utf8(same)
            .unwrap()
            .contains("a fresh run would hit")
    );
}
