//! The per-user hash cache of `--input` files: never a wrong key (racily
//! clean edits, damage, every kind of change), private files, a delta for
//! a few edits and a rewrite for many.
use std::path::PathBuf;
use std::time::Duration;

use crate::harness::Env;
use crate::inputs::{sh, write};
use crate::key::key_of;

/// The shard files of the test's hash cache.
fn shards(env: &Env) -> Vec<PathBuf> {
    let dir = env.path("xdg-cache/cachier/hashes");
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    all.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        !name.starts_with('.') && !name.ends_with(".delta")
    });
    all
}

fn inode(path: &std::path::Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

/// One settled edit in a big tree is a record appended to the shard's
/// delta, not the whole shard rewritten; once an eighth of the shard no
/// longer matches, it is rewritten and the delta goes. The key is the
/// cold key throughout.
#[test]
fn a_settled_edit_is_appended_and_many_rewrite_the_shard() {
    let env = Env::file();
    let args = ["--input", "tree", "--", "true"];
    let cold = |env: &Env, n: usize| {
        let home = env.path(&format!("cold-{n}"));
        key_of(env, &args, &[("XDG_CACHE_HOME", home.to_str())])
    };
    old_tree(&env);
    std::thread::sleep(Duration::from_millis(2200));
    let first = key_of(&env, &args, &[]);
    let shard = shards(&env).pop().expect("a shard");
    let delta = shard.with_extension("delta");
    let written = inode(&shard);

    write(&env, "tree/f07", "a longer content");
    std::thread::sleep(Duration::from_millis(2200));
    let edited = key_of(&env, &args, &[]);
    assert_ne!(first, edited);
    assert_eq!(edited, cold(&env, 1));
    assert_eq!(inode(&shard), written, "one edit rewrote the shard");
    let appended = std::fs::metadata(&delta).expect("a delta").len();
    assert_eq!(edited, key_of(&env, &args, &[]), "served from the delta");
    assert_eq!(std::fs::metadata(&delta).unwrap().len(), appended);

    for i in 10..16 {
        write(&env, &format!("tree/f{i:02}"), "changed");
    }
    std::thread::sleep(Duration::from_millis(2200));
    let many = key_of(&env, &args, &[]);
    assert_eq!(many, cold(&env, 2));
    assert_ne!(inode(&shard), written, "an eighth stale: rewritten");
    assert!(!delta.exists(), "the old delta went with its shard");
    assert_eq!(many, key_of(&env, &args, &[]));
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
        ("five more removals", "rm tree/a/f1[0-4]"),
    ] {
        sh(&env, change);
        let changed = key_of(&env, &args, &[]);
        assert_ne!(key, changed, "{what}");
        assert_eq!(changed, cold(&env), "{what}: a remembered hash went stale");
        key = changed;
    }
    assert!(
        size(&shard) < remembered,
        "records of changed files are dropped once an eighth is stale"
    );
}

fn args_with_key<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["key"];
    all.extend_from_slice(args);
    all
}

/// A shard (or its directory) that another user owns or could have written
/// is never trusted: a shared `XDG_CACHE_HOME` must not let anyone plant a
/// hash. The same forged shard in the user's own private files is read
/// (that is what the cache is), which shows the forgery would bite.
#[test]
fn a_shard_others_could_write_is_ignored() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::file();
    let args = ["--input", "tree", "--", "true"];
    old_tree(&env);
    std::thread::sleep(Duration::from_millis(2200));
    let key = key_of(&env, &args, &[]);
    let shard = shards(&env).pop().expect("a shard");
    let dir = shard.parent().unwrap().to_path_buf();
    let mut forged = std::fs::read(&shard).unwrap();
    forged[16 + 48] ^= 0xff; // the first record's hash
    let end = forged.len() - 32;
    let sum = *blake3::hash(&forged[..end]).as_bytes();
    forged[end..].copy_from_slice(&sum);
    let forge = || std::fs::write(&shard, &forged).unwrap();
    let chmod = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    forge();
    assert_ne!(
        key,
        key_of(&env, &args, &[]),
        "a private forged shard is read"
    );
    for (path, mode, back) in [(&dir, 0o777, 0o700), (&shard, 0o622, 0o600)] {
        forge();
        chmod(path, mode);
        assert_eq!(
            key,
            key_of(&env, &args, &[]),
            "{} at {mode:o}",
            path.display()
        );
        chmod(path, back);
    }
}
