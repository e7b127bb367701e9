//! The daemon's watch of large `--input` trees: a key over a tree nothing
//! touched is served from it, and every kind of change, anywhere the walk
//! looks, gives the key a cold walk gives. What a directory watch cannot
//! see (symlinks, files with a second link) is never served from it.
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::Env;
use crate::inputs::{sh, write};
use crate::key::key_of;

const WATCHED: &str = "(unchanged since walked: watched)";
const REREAD: &str = " read again: watched)";
const ON: (&str, Option<&str>) = ("CACHIER_WATCH", Some("1"));

/// Stops the test's daemon (file-backend tests start one only by watching).
struct Daemon<'a>(&'a Env);

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        let _ = self.0.cachier(&["daemon", "stop"]).output();
    }
}

/// A tree of 1,500 settled files (the watch takes trees of 1,000 and more,
/// counted by the hash cache, which remembers settled files only).
fn big_tree(env: &Env, root: &str) {
    for i in 0..1500 {
        write(
            env,
            &format!("{root}/d{:02}/f{i:04}", i % 11),
            &format!("{i}"),
        );
    }
    std::thread::sleep(Duration::from_millis(2200));
}

/// `key --explain`'s line for the input, and the key.
fn explained(env: &Env, args: &[&str]) -> (String, String) {
    let mut full = vec!["key", "--explain"];
    full.extend_from_slice(args);
    let out = env
        .cachier(&full)
        .env("CACHIER_WATCH", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().next().unwrap()[11..].to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("input "))
        .unwrap_or_default()
        .to_string();
    (key, line)
}

/// Run the key until the watch serves it (the first walk fills the hash
/// cache, the second is watched and remembered); it must equal `cold`
/// every time. The lines `key --explain` showed for the input.
fn until_watched(env: &Env, args: &[&str], cold: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (key, line) = explained(env, args);
        assert_eq!(format!("{key}\n"), cold, "{line}");
        let done = line.ends_with(WATCHED);
        seen.push(line);
        if done {
            return seen;
        }
    }
    panic!("the watch never served {args:?}: {seen:#?}");
}

/// The key without any watch or hash cache: what it must be.
fn cold(env: &Env, args: &[&str], n: &mut usize) -> String {
    *n += 1;
    let home = env.path(&format!("cold-{n}"));
    key_of(
        env,
        args,
        &[
            ("CACHIER_WATCH", Some("0")),
            ("XDG_CACHE_HOME", home.to_str()),
        ],
    )
}

#[test]
fn a_watched_tree_is_served_unchanged_and_every_change_is_seen() {
    let env = Env::file();
    let _daemon = Daemon(&env);
    big_tree(&env, "tree");
    let args = ["--input", "tree", "--", "true"];
    let mut n = 0;
    let mut last = cold(&env, &args, &mut n);
    until_watched(&env, &args, &last);
    assert!(
        env.stdout(&["daemon", "status"])
            .contains("watching     1 tree (12 directories)"),
        "{}",
        env.stdout(&["daemon", "status"])
    );
    let changes: &[&str] = &[
        // Same size, new content.
        "printf 9 > tree/d01/f0001",
        "echo more >> tree/d02/f0002",
        // Same size and mtime as before, new content (touch -d).
        "m=$(stat -c %y tree/d03/f0003); printf 8 > tree/d03/f0003; touch -d \"$m\" tree/d03/f0003",
        "rm tree/d04/f0004",
        "mv tree/d05/f0005 tree/d05/renamed",
        "echo new > tree/d06/new",
        // A new directory, then a file inside it changed.
        "mkdir tree/fresh && echo a > tree/fresh/a",
        "echo b > tree/fresh/a",
        // A directory moved in from outside, then a file inside it.
        "mkdir -p outside/sub && echo x > outside/sub/x && mv outside tree/moved",
        "echo y > tree/moved/sub/x",
        // A directory moved out, then one made where it was.
        "mv tree/d07 gone",
        "mkdir tree/d07 && echo z > tree/d07/z",
        "rm -r tree/d08",
    ];
    for change in changes {
        sh(&env, change);
        let now = cold(&env, &args, &mut n);
        assert_ne!(now, last, "{change} changed no key");
        let seen = until_watched(&env, &args, &now);
        // A change to files alone: only their directory is read again.
        if !change.contains("mkdir") && !change.contains("mv tree/d07") && !change.contains("rm -r")
        {
            assert!(
                seen[0].ends_with(&format!("1 directory{REREAD}")),
                "{change}: {seen:#?}"
            );
        }
        last = now;
    }
}

/// In a checkout, ignore files decide what counts, inside the tree or
/// above it, and a watched key follows them.
#[test]
fn ignore_files_inside_and_above_a_watched_tree_are_followed() {
    let env = Env::file();
    let _daemon = Daemon(&env);
    write(&env, "repo/.git/HEAD", "ref: refs/heads/main\n");
    write(&env, "repo/tree/build/out", "1");
    write(&env, "repo/tree/d02/.git/info/keep", "");
    big_tree(&env, "repo/tree");
    let args = ["--input", "repo/tree", "--", "true"];
    let mut n = 0;
    let mut last = cold(&env, &args, &mut n);
    until_watched(&env, &args, &last);
    for change in [
        // Above the tree: the checkout's own .gitignore.
        "printf 'build/\\n*.log\\n' > repo/.gitignore",
        // Inside it: a directory ignored until now counts again.
        "echo '!build/' > repo/tree/.gitignore",
        "echo 2 > repo/tree/build/out",
        "mkdir -p repo/.git/info && echo 'd00/' > repo/.git/info/exclude",
        "echo 'd01/' > repo/tree/.ignore",
        // A checkout nested in the tree: its own local excludes.
        "echo 'f00*' > repo/tree/d02/.git/info/exclude",
    ] {
        sh(&env, change);
        let now = cold(&env, &args, &mut n);
        assert_ne!(now, last, "{change} changed no key");
        until_watched(&env, &args, &now);
        last = now;
    }
    // What an ignore file leaves out may change without changing the key,
    // also where only the changed directory is read again: the ignore
    // files above it count there as in a whole walk.
    sh(&env, "echo 5 > repo/tree/d00/f0000");
    assert_eq!(cold(&env, &args, &mut n), last);
    until_watched(&env, &args, &last);
    sh(&env, "echo 6 > repo/tree/d03/new.log");
    assert_eq!(cold(&env, &args, &mut n), last);
    let seen = until_watched(&env, &args, &last);
    assert!(
        seen[0].ends_with(&format!("1 directory{REREAD}")),
        "{seen:#?}"
    );
    sh(&env, "echo 7 > repo/tree/d03/new.txt");
    let now = cold(&env, &args, &mut n);
    assert_ne!(now, last);
    let seen = until_watched(&env, &args, &now);
    assert!(
        seen[0].ends_with(&format!("1 directory{REREAD}")),
        "{seen:#?}"
    );
}

/// Writing the declared outputs inside an input tree leaves it watched;
/// a glob input is watched too.
#[test]
fn outputs_do_not_disturb_a_watch_and_globs_are_watched() {
    let env = Env::file();
    let _daemon = Daemon(&env);
    big_tree(&env, "src");
    write(&env, "src/dist/app", "1");
    for args in [
        &["--input", "src", "--output", "src/dist", "--", "true"][..],
        &["--input", "src/d0*", "--", "true"][..],
    ] {
        let mut n = 0;
        let key = cold(&env, args, &mut n);
        until_watched(&env, args, &key);
        sh(
            &env,
            "echo 2 > src/dist/app && mkdir -p src/dist/more && echo 3 > src/dist/more/x",
        );
        let (again, line) = explained(&env, args);
        assert_eq!(format!("{again}\n"), key);
        if args[1] == "src" {
            assert!(
                line.ends_with(WATCHED),
                "outputs unwatched the tree: {line}"
            );
        }
        sh(&env, "echo 4 > src/d02/f0002");
        let now = cold(&env, args, &mut n);
        assert_ne!(now, key);
        until_watched(&env, args, &now);
        sh(&env, "echo 1 > src/d02/f0002");
    }
}

/// A symlink or a second hard link in the tree, made before or after the
/// tree is watched: what a directory watch cannot see, so the key is
/// walked while it is there (and always right).
#[test]
fn links_a_watch_cannot_see_keep_the_tree_walked() {
    let env = Env::file();
    let _daemon = Daemon(&env);
    big_tree(&env, "tree");
    write(&env, "elsewhere/target", "1");
    let args = ["--input", "tree", "--", "true"];
    let mut n = 0;
    for (link, write_through) in [
        (
            "ln -s ../../elsewhere/target tree/d00/link",
            "echo 2 > elsewhere/target",
        ),
        (
            "ln elsewhere/target tree/d01/hard",
            "echo 3 > elsewhere/target",
        ),
    ] {
        let plain = cold(&env, &args, &mut n);
        until_watched(&env, &args, &plain);
        sh(&env, link);
        let before = cold(&env, &args, &mut n);
        assert_ne!(before, plain, "{link}");
        for _ in 0..3 {
            let (key, line) = explained(&env, &args);
            assert_eq!(format!("{key}\n"), before);
            assert!(
                !line.ends_with(')'),
                "{link}: served from the watch: {line}"
            );
        }
        sh(&env, write_through);
        let after = cold(&env, &args, &mut n);
        assert_ne!(after, before);
        assert_eq!(key_of(&env, &args, &[ON]), after, "{link}");
        sh(&env, "rm -f tree/d00/link tree/d01/hard");
        assert_eq!(cold(&env, &args, &mut n), plain);
    }
}

/// Watching off, or no daemon to be had: a walk, the same key, and no
/// daemon started.
#[test]
fn without_a_watch_the_key_is_walked() {
    let env = Env::file();
    let _daemon = Daemon(&env);
    big_tree(&env, "tree");
    let args = ["--input", "tree", "--", "true"];
    let mut n = 0;
    let key = cold(&env, &args, &mut n);
    for _ in 0..3 {
        assert_eq!(key_of(&env, &args, &[]), key);
    }
    env.cachier(&["daemon", "status"]).assert().code(3);
    until_watched(&env, &args, &key);
    // A daemon killed with its watches: the next key walks again.
    let pid = std::fs::read_to_string(env.path("run/cachier/memory.pid")).unwrap();
    sh(&env, &format!("kill -9 {}", pid.trim()));
    sh(&env, "echo 7 > tree/d03/f0003");
    let now = cold(&env, &args, &mut n);
    assert_ne!(now, key);
    let (again, line) = explained(&env, &args);
    assert_eq!(format!("{again}\n"), now);
    assert!(!line.ends_with(WATCHED), "{line}");
    until_watched(&env, &args, &now);
}

/// A tree in a linked git worktree: the main checkout's local excludes
/// (outside the tree and its own `.git` file) decide what counts too.
#[test]
fn a_linked_worktrees_excludes_are_followed() {
    let env = Env::file();
    let _daemon = Daemon(&env);
    sh(
        &env,
        "git init -q main && git -C main -c user.name=t -c user.email=t@t commit -q --allow-empty -m x \
         && git -C main worktree add -q ../linked 2>/dev/null",
    );
    big_tree(&env, "linked/tree");
    let args = ["--input", "linked/tree", "--", "true"];
    let mut n = 0;
    let before = cold(&env, &args, &mut n);
    until_watched(&env, &args, &before);
    sh(
        &env,
        "mkdir -p main/.git/info && echo 'd00/' >> main/.git/info/exclude",
    );
    let after = cold(&env, &args, &mut n);
    assert_ne!(
        after, before,
        "the worktree's excludes are the main checkout's"
    );
    until_watched(&env, &args, &after);
}
