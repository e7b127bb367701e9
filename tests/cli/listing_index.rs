//! The file store's listing index (`<dir>/index/<shard>`) is a cache, never
//! the truth: whatever happens to the entries behind it (removed, added,
//! overwritten, hit, edited in place keeping size and mtime), and whatever
//! happens to it (damage, a forgery others could have written), `ls` shows
//! exactly what the entry files hold.
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::backend::entry_files;
use crate::harness::Env;

/// Past the index's racy margin (2 s): entries written before now are
/// settled, and the next scan remembers them.
fn settle() {
    std::thread::sleep(Duration::from_millis(2200));
}

/// Store `echo WORD` in namespace `t` with `out` as its stdout and `code`
/// as its exit code.
fn precache(env: &Env, word: &str, out: &str, code: i32) {
    std::fs::write(env.path("out"), out).unwrap();
    let code = code.to_string();
    env.cachier(&[
        "precache",
        "--stdout",
        "out",
        "--exit-code",
        &code,
        "--name",
        "t",
        "--",
        "echo",
        word,
    ])
    .assert()
    .code(0);
}

/// `ls --json` without the one field that moves with the clock.
fn listing(env: &Env) -> Vec<serde_json::Value> {
    let mut items: Vec<serde_json::Value> = env.json(&["ls", "--json"]).as_array().unwrap().clone();
    for item in &mut items {
        item.as_object_mut().unwrap().remove("age_ms");
    }
    items
}

/// The listing read from the entry files alone (the index removed first).
fn truth(env: &Env) -> Vec<serde_json::Value> {
    let _ = std::fs::remove_dir_all(index_dir(env));
    listing(env)
}

fn index_dir(env: &Env) -> PathBuf {
    env.path("cache/index")
}

fn index_files(env: &Env) -> Vec<PathBuf> {
    std::fs::read_dir(index_dir(env))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn exit_of(items: &[serde_json::Value], argv1: &str) -> Option<i64> {
    items
        .iter()
        .find(|i| i["argv"][1] == argv1)
        .and_then(|i| i["exit_code"].as_i64())
}

/// The entry file of `echo ARGV1` as `items` list it.
fn entry_of(env: &Env, items: &[serde_json::Value], argv1: &str) -> PathBuf {
    let item = items.iter().find(|i| i["argv"][1] == argv1).unwrap();
    let key = item["key"].as_str().unwrap();
    env.path(&format!("cache/entries/{}/{key}", &key[..2]))
}

/// Where the CBOR metadata's `exit_code: 3` value byte is in `bytes`.
fn exit_byte(bytes: &[u8]) -> usize {
    let needle = b"iexit_code\x03";
    find(bytes, needle) + needle.len() - 1
}

/// Where the index's packed exit code 3 is, in a record whose stdout is
/// 7 bytes and stderr none (`output\n`).
fn packed_exit_byte(bytes: &[u8]) -> usize {
    let mut needle = vec![3, 0, 0, 0];
    needle.extend_from_slice(&7u64.to_le_bytes());
    needle.extend_from_slice(&0u64.to_le_bytes());
    find(bytes, &needle)
}

fn find(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("an exit code of 3")
}

/// The one index file, made anew from the entry, then with its exit code
/// 3 made 4, and its checksum made to match when `sound`.
fn forge(env: &Env, sound: bool) -> PathBuf {
    truth(env);
    let files = index_files(env);
    assert_eq!(files.len(), 1, "{files:?}");
    let path = files[0].clone();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = packed_exit_byte(&bytes);
    bytes[at] = 4;
    if sound {
        let body = bytes.len() - 32;
        let check = *blake3::hash(&bytes[..body]).as_bytes();
        bytes[body..].copy_from_slice(&check);
    }
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn entries_changed_behind_the_index_are_listed_as_they_are() {
    let env = Env::file();
    for word in ["a", "b", "c", "e"] {
        precache(&env, word, "old output\n", 3);
    }
    settle();
    let first = listing(&env);
    assert_eq!(first.len(), 4);
    let files = index_files(&env);
    assert!(!files.is_empty(), "the first scan wrote an index");
    let mode = |p: &PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&index_dir(&env)), 0o700);
    for file in &files {
        assert_eq!(mode(file), 0o600, "{file:?}");
    }
    assert_eq!(listing(&env), first, "read back through the index");

    // Behind the index: one removed, one added, one overwritten with
    // another exit code, one hit, one aged.
    std::fs::remove_file(entry_of(&env, &first, "a")).unwrap();
    precache(&env, "d", "new\n", 0);
    // The same output, another exit code: a file of the same size, so
    // only its stamp tells the index's record is not its own.
    precache(&env, "b", "old output\n", 5);
    env.cachier(&["run", "--name", "t", "--", "echo", "c"])
        .assert()
        .code(3)
        .stdout("old output\n");
    std::fs::File::options()
        .write(true)
        .open(entry_of(&env, &first, "e"))
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    let seen = listing(&env);
    let words: Vec<&str> = seen
        .iter()
        .map(|i| i["argv"][1].as_str().unwrap())
        .collect();
    let mut sorted = words.clone();
    sorted.sort();
    assert_eq!(sorted, ["b", "c", "d", "e"]);
    assert_eq!(exit_of(&seen, "b"), Some(5));
    let c = seen.iter().find(|i| i["argv"][1] == "c").unwrap();
    assert_eq!(c["hits"], 1);
    let e = seen.iter().find(|i| i["argv"][1] == "e").unwrap();
    assert_eq!(e["created_ms"], 1_000_000_000_000u64);
    assert_eq!(seen, truth(&env));

    // And again once all of it has settled and been indexed anew.
    settle();
    let indexed = listing(&env);
    assert_eq!(listing(&env), indexed);
    assert_eq!(indexed, truth(&env));
}

/// Only the ctime tells this edit: the index must not show the old row.
#[test]
fn an_edit_keeping_size_and_mtime_is_seen() {
    let env = Env::file();
    precache(&env, "x", "output\n", 3);
    settle();
    assert_eq!(exit_of(&listing(&env), "x"), Some(3));
    assert_eq!(index_files(&env).len(), 1);
    let path = entry_files(env.dir.path()).pop().unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = exit_byte(&bytes);
    bytes[at] = 4;
    std::fs::write(&path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let seen = listing(&env);
    assert_eq!(exit_of(&seen, "x"), Some(4));
    assert_eq!(seen, truth(&env));
}

#[test]
fn a_damaged_index_is_ignored_and_rebuilt() {
    let env = Env::file();
    precache(&env, "x", "output\n", 3);
    settle();
    let good = listing(&env);
    // A changed byte its checksum no longer covers.
    forge(&env, false);
    assert_eq!(listing(&env), good);
    // Rebuilt: sound again, and used.
    let path = index_files(&env).pop().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(listing(&env), good);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "a sound index is not rewritten"
    );
    // Cut short.
    std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
    assert_eq!(listing(&env), good);
    std::fs::write(&path, b"").unwrap();
    assert_eq!(listing(&env), good);
}

/// A sound forged index is used when it is this user's own (a cache the
/// user may edit, as the entries themselves), and ignored as soon as
/// anyone else owns it or could have written it or its directory.
#[test]
fn an_index_others_could_write_is_ignored() {
    let env = Env::file();
    precache(&env, "x", "output\n", 3);
    settle();
    assert_eq!(exit_of(&listing(&env), "x"), Some(3));
    forge(&env, true);
    assert_eq!(
        exit_of(&listing(&env), "x"),
        Some(4),
        "the forgery is effective"
    );

    let path = forge(&env, true);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
    assert_eq!(exit_of(&listing(&env), "x"), Some(3), "group-writable");

    let path = forge(&env, true);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o602)).unwrap();
    assert_eq!(exit_of(&listing(&env), "x"), Some(3), "world-writable");

    forge(&env, true);
    let dir = index_dir(&env);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    assert_eq!(
        exit_of(&listing(&env), "x"),
        Some(3),
        "a group-writable dir"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    // Another owner (only root can make one).
    if unsafe { libc::geteuid() } == 0 {
        let path = forge(&env, true);
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        assert_eq!(
            exit_of(&listing(&env), "x"),
            Some(3),
            "owned by another user"
        );
    }
}

/// `gc` removes the temp file of an index write that was killed, once it
/// is an hour old (a write in progress is younger).
#[test]
fn gc_sweeps_an_index_write_left_behind() {
    let env = Env::file();
    precache(&env, "x", "output\n", 3);
    settle();
    listing(&env);
    let old = index_dir(&env).join(".indexKILLED");
    let young = index_dir(&env).join(".indexWRITING");
    std::fs::write(&old, b"half").unwrap();
    std::fs::write(&young, b"half").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    env.cachier(&["gc"]).assert().code(0);
    assert!(!old.exists(), "an hour-old leftover is swept");
    assert!(young.exists(), "a write in progress is left alone");
    assert_eq!(index_files(&env).len(), 2, "the index itself stays");
}

/// An entry file under another spelling of its key (upper-case hex, here
/// a hard link to the real one) is not an entry: `ls` lists the entry
/// once, with and without the index.
#[test]
fn an_entry_under_an_upper_case_name_is_not_listed_twice() {
    let env = Env::file();
    precache(&env, "one", "1\n", 0);
    precache(&env, "two", "2\n", 0);
    settle();
    let files = entry_files(env.dir.path());
    let real = &files[0];
    let name = real.file_name().unwrap().to_str().unwrap().to_uppercase();
    std::fs::hard_link(real, real.with_file_name(name)).unwrap();
    for _ in 0..3 {
        assert_eq!(listing(&env), truth(&env));
        assert_eq!(listing(&env).len(), 2);
    }
}
