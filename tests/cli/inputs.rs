//! `--input` walks: ignore files, explicit files, symlinks, and inputs that
//! must stop the command (unreadable, FIFO, socket, loop). The hash cache
//! is `hash_cache`.
use assert_cmd::assert::OutputAssertExt;

use crate::harness::Env;
use crate::key::key_of;

pub(crate) fn write(env: &Env, name: &str, text: &str) {
    let path = env.path(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A checkout: a source file, and files that git, `.ignore` or the local
/// excludes leave out.
fn repo(env: &Env) {
    write(env, "repo/src/main.c", "int main;");
    write(env, "repo/.gitignore", "build/\n*.log\n");
    write(env, "repo/src/.ignore", "tmp/\n");
    write(env, "repo/.git/HEAD", "ref: refs/heads/main\n");
    write(env, "repo/.git/info/exclude", "secret.txt\n");
    write(env, "repo/build/out.o", "1");
    write(env, "repo/src/debug.log", "1");
    write(env, "repo/src/tmp/scratch", "1");
    write(env, "repo/secret.txt", "1");
}

#[test]
fn ignored_files_and_git_do_not_count_unless_no_ignore() {
    let env = Env::file();
    repo(&env);
    for spec in ["repo", "repo/src", "repo/*", "repo/src/*"] {
        let key = |extra: &[&str]| {
            let mut args = vec!["--input", spec];
            args.extend_from_slice(extra);
            args.extend(["--", "true"]);
            key_of(&env, &args, &[])
        };
        let (quiet, all) = (key(&[]), key(&["--no-ignore"]));
        for noise in [
            "repo/.git/HEAD",
            "repo/build/out.o",
            "repo/src/debug.log",
            "repo/src/tmp/scratch",
            "repo/secret.txt",
        ] {
            write(&env, noise, &format!("changed for {spec}"));
            assert_eq!(quiet, key(&[]), "{spec}: {noise} is ignored");
        }
        assert_ne!(
            all,
            key(&["--no-ignore"]),
            "{spec}: --no-ignore walks everything"
        );
        write(&env, "repo/src/main.c", &format!("int main; // {spec}"));
        assert_ne!(quiet, key(&[]), "{spec}: a tracked file counts");
    }
}

#[test]
fn global_git_excludes_do_not_count() {
    let env = Env::file();
    repo(&env);
    write(&env, "home/.config/git/ignore", "*.c\n");
    write(
        &env,
        "home/.gitconfig",
        "[core]\n\texcludesFile = ~/.config/git/ignore\n",
    );
    let key = || {
        env.cachier(&["key", "--input", "repo", "--", "true"])
            .env("HOME", env.path("home"))
            .env("XDG_CONFIG_HOME", env.path("home/.config"))
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone()
    };
    let before = key();
    write(&env, "repo/src/main.c", "int main2;");
    assert_ne!(
        before,
        key(),
        "a per-user exclude must not change what counts"
    );
}

#[test]
fn a_file_named_explicitly_is_always_taken() {
    let env = Env::file();
    repo(&env);
    for spec in ["repo/build/out.o", "repo/.git/HEAD", "repo/src/debug.log"] {
        let args = ["--input", spec, "--", "true"];
        let before = key_of(&env, &args, &[]);
        write(&env, spec, &format!("new {spec}"));
        assert_ne!(before, key_of(&env, &args, &[]), "{spec}");
    }
    // A glob whose every match is ignored names nothing: exit 2, with the way out.
    let out = env
        .cachier(&["key", "--input", "repo/src/*.log", "--", "true"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--no-ignore takes them"), "{stderr}");
}

#[test]
fn symlinks_are_followed() {
    let env = Env::file();
    write(&env, "outside/data.csv", "1");
    write(&env, "tree/a", "a");
    std::os::unix::fs::symlink(env.path("outside/data.csv"), env.path("tree/link")).unwrap();
    std::os::unix::fs::symlink(env.path("outside"), env.path("tree/dir")).unwrap();
    let args = ["--input", "tree", "--", "true"];
    let before = key_of(&env, &args, &[]);
    write(&env, "outside/data.csv", "2");
    assert_ne!(before, key_of(&env, &args, &[]));
}

pub(crate) fn sh(env: &Env, script: &str) {
    let status = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(env.dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

/// `cachier run --input SPEC` must stop with exit 2, naming `culprit`,
/// without running the command.
fn refused(env: &Env, spec: &str, culprit: &str) {
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
        stderr.starts_with(&format!("cachier: --input `{spec}`: "))
            && stderr.contains(&format!("`{culprit}`"))
            && stderr.ends_with("(the command did not run)\n"),
        "{stderr}"
    );
    assert_eq!(env.runs(), 0);
}

#[test]
fn an_unreadable_file_in_an_input_dir_is_exit_2() {
    let env = Env::file();
    write(&env, "tree/ok", "1");
    if rustix::process::geteuid().is_root() {
        // Root reads any mode; this file refuses even root.
        std::os::unix::fs::symlink("/proc/sys/vm/drop_caches", env.path("tree/locked")).unwrap();
    } else {
        use std::os::unix::fs::PermissionsExt;
        write(&env, "tree/locked", "1");
        let mode = std::fs::Permissions::from_mode(0o000);
        std::fs::set_permissions(env.path("tree/locked"), mode).unwrap();
    }
    refused(&env, "tree", "tree/locked");
}

#[test]
fn fifos_sockets_and_symlink_loops_are_exit_2() {
    let env = Env::file();
    write(&env, "tree/ok", "1");
    let fifo = std::ffi::CString::new(env.path("tree/fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    refused(&env, "tree", "tree/fifo");
    refused(&env, "tree/fifo", "tree/fifo");
    std::fs::remove_file(env.path("tree/fifo")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(env.path("tree/sock")).unwrap();
    refused(&env, "tree", "tree/sock");
    std::fs::remove_file(env.path("tree/sock")).unwrap();
    std::fs::create_dir(env.path("tree/sub")).unwrap();
    std::os::unix::fs::symlink("..", env.path("tree/sub/up")).unwrap();
    refused(&env, "tree", "tree/sub/up");
    std::fs::remove_file(env.path("tree/sub/up")).unwrap();
    std::os::unix::fs::symlink("self", env.path("tree/self")).unwrap();
    refused(&env, "tree", "tree/self");
}
