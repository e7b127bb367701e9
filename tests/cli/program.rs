//! The program in the key: a program given by path and an interpreter's
//! script are keyed by content, through wrappers; `--no-program` turns it off.
use std::os::unix::fs::PermissionsExt;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::Env;
use crate::key::key_of;

fn script(env: &Env, name: &str, text: &str) {
    let path = env.path(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether editing `file` changes the key of `cmd`, and whether it still
/// does under `--no-program`.
fn edit_changes_key(env: &Env, cmd: &[&str], file: &str) -> (bool, bool) {
    let key = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.push("--");
        args.extend_from_slice(cmd);
        key_of(env, &args, &[])
    };
    std::fs::write(env.path(file), "echo one\n").unwrap();
    let (before, before_off) = (key(&[]), key(&["--no-program"]));
    std::fs::write(env.path(file), "echo two\n").unwrap();
    (before != key(&[]), before_off != key(&["--no-program"]))
}

#[test]
fn editing_the_readme_script_is_a_miss_and_explain_names_it() {
    let env = Env::file();
    let counted = "echo $$ >> \"$COUNT\"\n";
    script(
        &env,
        "slow.sh",
        &format!("#!/bin/sh\n{counted}echo version one\n"),
    );
    let run = || {
        let mut cmd = env.cachier(&["run", "--", "./slow.sh"]);
        cmd.env("COUNT", env.path("count"));
        cmd.assert().code(0).get_output().stdout.clone()
    };
    assert_eq!(run(), b"version one\n");
    assert_eq!(run(), b"version one\n");
    assert_eq!(env.runs(), 1, "the second run is a hit");
    script(
        &env,
        "slow.sh",
        &format!("#!/bin/sh\n{counted}echo version two\n"),
    );
    let text = env.stdout(&["key", "--explain", "--", "./slow.sh"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("program ./slow.sh  "))
        .unwrap_or_else(|| panic!("no program line in:\n{text}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{line}");
    assert_eq!(fields[3], "content", "{line}");
    assert!(
        text.contains("differs in:\n  program ./slow.sh: changed\n"),
        "{text}"
    );
    assert_eq!(run(), b"version two\n", "a stale replay");
    assert_eq!(env.runs(), 2);
}

#[test]
fn interpreter_scripts_are_keyed_through_wrappers() {
    let env = Env::file();
    std::fs::write(env.path("error"), "").unwrap();
    for (cmd, file) in [
        (&["sh", "x.sh"][..], "x.sh"),
        (&["bash", "-e", "x.sh", "arg"], "x.sh"),
        (&["python3", "x.py"], "x.py"),
        (&["python3", "-W", "error", "x.py"], "x.py"),
        (&["env", "A=1", "timeout", "5", "bash", "x.sh"], "x.sh"),
        (&["nice", "-n", "5", "nohup", "node", "x.js"], "x.js"),
        (&["uv", "run", "--with", "rich", "x.py"], "x.py"),
        (&["bundle", "exec", "ruby", "x.rb"], "x.rb"),
        (&["./x.sh"], "x.sh"),
        (&["env", "-C", "sub", "./y.sh"], "sub/y.sh"),
    ] {
        std::fs::create_dir_all(env.path("sub")).unwrap();
        assert_eq!(
            edit_changes_key(&env, cmd, file),
            (true, false),
            "{cmd:?}: the script counts, and --no-program leaves it out"
        );
    }
}

#[test]
fn inline_code_and_modules_have_no_script() {
    let env = Env::file();
    for cmd in [
        &["sh", "-c", "cat x.sh", "x.sh"][..],
        &["bash", "-ec", "true", "x.sh"],
        &["python3", "-m", "x.sh"],
        &["python3", "-c", "1", "x.sh"],
        &["node", "-e", "1", "x.sh"],
        &["cat", "x.sh"],
    ] {
        assert_eq!(
            edit_changes_key(&env, cmd, "x.sh"),
            (false, false),
            "{cmd:?}"
        );
    }
}

#[test]
fn a_program_found_on_path_is_keyed_by_name() {
    let env = Env::file();
    script(&env, "bin/tool", "#!/bin/sh\necho one\n");
    let path = format!(
        "{}:{}",
        env.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let key = |cmd: &str| {
        env.cachier(&["key", "--", cmd])
            .env("PATH", &path)
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone()
    };
    let (by_name, by_path) = (key("tool"), key("./bin/tool"));
    script(&env, "bin/tool", "#!/bin/sh\necho two\n");
    assert_eq!(by_name, key("tool"), "a PATH program is keyed by name");
    assert_ne!(
        by_path,
        key("./bin/tool"),
        "a program by path is keyed by content"
    );
    // A program given by path that does not exist is keyed as such, and
    // keyed again by content once it does.
    let absent = key_of(&env, &["--", "./later.sh"], &[]);
    script(&env, "later.sh", "#!/bin/sh\n");
    assert_ne!(absent, key_of(&env, &["--", "./later.sh"], &[]));
}
