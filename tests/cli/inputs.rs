//! `--input` walks: ignore files, explicit files, the hash cache, symlinks,
//! and inputs that must stop the command (unreadable, FIFO, socket, loop).
use std::path::PathBuf;
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::Env;
use crate::key::key_of;

fn write(env: &Env, name: &str, text: &str) {
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

/// The shard files of the test's hash cache.
fn shards(env: &Env) -> Vec<PathBuf> {
    let dir = env.path("xdg-cache/cachier/hashes");
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    all.retain(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'));
    all
}

/// A tree big enough for the hash cache (40 files), all changed long ago
/// except for their ctime, which is now.
fn old_tree(env: &Env) {
    for i in 0..40 {
        write(env, &format!("tree/f{i:02}"), &format!("{i:04}"));
    }
    sh(env, "touch -d '2020-01-02 03:04:05' tree/*");
}

/// An edit that keeps the file's size and mtime (`touch -d`): only its
/// ctime tells. The key must see it, whether or not its hash was remembered.
fn edit_keeping_size_and_mtime(env: &Env) {
    write(env, "tree/f07", "abcd");
    sh(env, "touch -d '2020-01-02 03:04:05' tree/f07");
}

#[test]
fn an_edit_that_keeps_size_and_mtime_changes_the_key() {
    let env = Env::file();
    let args = ["--input", "tree", "--", "true"];
    // Within the same second: nothing is remembered yet (racily clean).
    old_tree(&env);
    let fresh = key_of(&env, &args, &[]);
    edit_keeping_size_and_mtime(&env);
    assert_ne!(fresh, key_of(&env, &args, &[]), "edited in the same second");
    // Once the files have settled, their hashes are remembered...
    old_tree(&env);
    std::thread::sleep(Duration::from_millis(2200));
    let settled = key_of(&env, &args, &[]);
    assert_eq!(shards(&env).len(), 1, "the walk's hashes were remembered");
    assert_eq!(settled, key_of(&env, &args, &[]));
    assert_eq!(fresh, settled, "remembered hashes give the same key");
    // ...and still the edit is seen.
    edit_keeping_size_and_mtime(&env);
    assert_ne!(settled, key_of(&env, &args, &[]), "edited after caching");
}

#[test]
fn a_damaged_hash_cache_is_rebuilt() {
    let env = Env::file();
    let args = ["--input", "tree", "--", "true"];
    old_tree(&env);
    // A second path to one file: one record, and still nothing to rewrite.
    std::os::unix::fs::symlink("f00", env.path("tree/again")).unwrap();
    std::thread::sleep(Duration::from_millis(2200));
    let key = key_of(&env, &args, &[]);
    let shard = shards(&env).pop().expect("a shard");
    let inode =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let written = inode(&shard);
    assert_eq!(key, key_of(&env, &args, &[]));
    assert_eq!(inode(&shard), written, "an unchanged tree rewrites nothing");
    let good = std::fs::read(&shard).unwrap();
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&shard), 0o600);
    assert_eq!(mode(shard.parent().unwrap()), 0o700);
    for damage in [b"garbage".to_vec(), good[..good.len() - 1].to_vec(), {
        let mut flipped = good.clone();
        flipped[70] ^= 0xff; // a byte of the first remembered hash
        flipped
    }] {
        std::fs::write(&shard, &damage).unwrap();
        assert_eq!(
            key,
            key_of(&env, &args, &[]),
            "a damaged cache never changes a key"
        );
        assert_eq!(std::fs::read(&shard).unwrap(), good, "rebuilt");
    }
    // Concurrent writers: every run gets the key, the shard stays whole.
    std::fs::remove_file(&shard).unwrap();
    let runs: Vec<_> = (0..8)
        .map(|_| {
            env.cachier(&args_with_key(&args))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(String::from_utf8(out.stdout).unwrap(), key);
    }
    assert_eq!(std::fs::read(&shard).unwrap(), good, "one whole shard");
    let dir = env.path("xdg-cache/cachier/hashes");
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        1,
        "no temp file left behind"
    );
}

/// The key with remembered hashes is always the key without them: files of
/// the same names and sizes in two directories (a file stat-ed in the wrong
/// one would be served the other's hash), then an edit that keeps size and
/// mtime, a removal, a rename and an addition.
#[test]
fn remembered_hashes_follow_every_change_of_the_tree() {
    let env = Env::file();
    let args = ["--input", "tree", "--", "true"];
    for dir in ["a", "b"] {
        for i in 0..20 {
            write(
                &env,
                &format!("tree/{dir}/f{i:02}"),
                &format!("{dir}{i:03}"),
            );
        }
    }
    sh(&env, "touch -d '2020-01-02 03:04:05' tree/*/*");
    std::thread::sleep(Duration::from_millis(2200));
    let mut colds = 0;
    let mut cold = |env: &Env| {
        colds += 1;
        let home = env.path(&format!("cold-cache-{colds}"));
        key_of(env, &args, &[("XDG_CACHE_HOME", home.to_str())])
    };
    let mut key = key_of(&env, &args, &[]);
    let shard = shards(&env)
        .pop()
        .expect("the walk's hashes were remembered");
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    let remembered = size(&shard);
    assert_eq!(key, key_of(&env, &args, &[]));
    assert_eq!(key, cold(&env));
    for (what, change) in [
        (
            "edit keeping size and mtime",
            "printf zzzz > tree/b/f07 && touch -d '2020-01-02 03:04:05' tree/b/f07",
        ),
        ("removal", "rm tree/b/f03"),
        ("rename", "mv tree/a/f05 tree/a/g05"),
        ("addition", "printf a999 > tree/a/f99"),
    ] {
        sh(&env, change);
        let changed = key_of(&env, &args, &[]);
        assert_ne!(key, changed, "{what}");
        assert_eq!(changed, cold(&env), "{what}: a remembered hash went stale");
        key = changed;
    }
    assert!(
        size(&shard) < remembered,
        "records of changed files are dropped"
    );
}

fn sh(env: &Env, script: &str) {
    let status = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(env.dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

fn args_with_key<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["key"];
    all.extend_from_slice(args);
    all
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
