//! The store's own rules, called directly (the CLI suite covers the rest).
use std::time::Duration;

use super::SqliteStore;
use crate::entry::Event;
use crate::key::Key;
use crate::store::{Claim, Holder, Store};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::new(dir.path().join("sub").join("c.db"), false);
    (dir, store)
}

#[test]
fn new_does_no_io() {
    let (dir, store) = store();
    assert_eq!(
        store.location(),
        dir.path().join("sub/c.db").display().to_string()
    );
    assert!(!dir.path().join("sub").exists());
}

#[test]
fn once_per_is_true_once_per_interval() {
    let (_dir, store) = store();
    let hour = Duration::from_secs(3600);
    assert!(store.once_per("gc", hour).unwrap());
    assert!(!store.once_per("gc", hour).unwrap());
    assert!(store.once_per("other", hour).unwrap());
    assert!(store.once_per("gc", Duration::ZERO).unwrap());
}

#[test]
fn counters_add_up_and_reset() {
    let (_dir, store) = store();
    let key = Key([7; 32]);
    let saved = Duration::from_millis(250);
    for event in [
        Event::Miss,
        Event::Hit { saved },
        Event::Hit { saved },
        Event::Wait,
    ] {
        store.record("ns", &key, event).unwrap();
    }
    store.record("ns", &key, Event::StaleServe).unwrap();
    let c = store.counters().unwrap()["ns"];
    assert_eq!(
        (
            c.hits,
            c.misses,
            c.waits,
            c.stale_serves,
            c.saved_ms,
            c.entries
        ),
        (2, 1, 1, 1, 500, 0)
    );
    store.reset_counters().unwrap();
    assert_eq!(store.counters().unwrap()["ns"].hits, 0);
    assert!(store.get(&key).unwrap().is_none());
    assert_eq!(store.remove(&key, "ns").unwrap(), 0);
}

#[test]
fn counts_an_earlier_version_kept_in_the_database_are_added_in() {
    let (dir, store) = store();
    let key = Key([8; 32]);
    // A first-version database: a `counters` table, schema version 1.
    store.counters().unwrap();
    rusqlite::Connection::open(dir.path().join("sub/c.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE counters (
                namespace TEXT PRIMARY KEY,
                hits INTEGER NOT NULL DEFAULT 0,
                misses INTEGER NOT NULL DEFAULT 0,
                waits INTEGER NOT NULL DEFAULT 0,
                stale_serves INTEGER NOT NULL DEFAULT 0,
                saved_ms INTEGER NOT NULL DEFAULT 0
            );
            INSERT INTO counters (namespace, hits, misses, saved_ms) VALUES ('ns', 5, 2, 100);
            UPDATE schema_version SET version = 1;
            PRAGMA user_version = 0;",
        )
        .unwrap();
    let store = SqliteStore::new(dir.path().join("sub/c.db"), false);
    let saved = Duration::from_millis(10);
    store.record("ns", &key, Event::Hit { saved }).unwrap();
    store.record("other", &key, Event::Miss).unwrap();
    let all = store.counters().unwrap();
    let c = all["ns"];
    assert_eq!((c.hits, c.misses, c.saved_ms), (6, 2, 110));
    assert_eq!(all["other"].misses, 1);
    store.reset_counters().unwrap();
    let all = store.counters().unwrap();
    assert_eq!(
        (all["ns"].hits, all["ns"].misses, all["other"].misses),
        (0, 0, 0)
    );
}

#[test]
fn a_claim_is_held_until_its_lease_drops() {
    let (_dir, store) = store();
    let key = Key([1; 32]);
    let me = Holder::me();
    let Claim::Owner(lease) = store.claim(&key).unwrap() else {
        panic!("the first claim owns");
    };
    let Claim::Busy(Some(holder)) = store.claim(&key).unwrap() else {
        panic!("a second claim waits");
    };
    assert_eq!(holder, me);
    assert!(!store.wait(&key, Some(Duration::from_millis(20))).unwrap());
    drop(lease);
    assert!(store.wait(&key, Some(Duration::from_secs(5))).unwrap());
    assert_eq!(store.clear_claims().unwrap(), 0);
}

#[test]
fn a_newer_schema_is_refused_in_one_line() {
    let (dir, store) = store();
    store.counters().unwrap();
    let path = dir.path().join("sub/c.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 3; UPDATE schema_version SET version = 3")
        .unwrap();
    let err = SqliteStore::new(path, false).counters().unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("schema version 3, newer than this cachier knows (2)"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn the_wal_stays_small_under_hits_of_separate_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let key = Key([9; 32]);
    // A run per store, as per process: each opens, counts a hit, closes.
    for _ in 0..1200 {
        let store = SqliteStore::new(path.clone(), false);
        let saved = Duration::from_millis(1);
        store.record("ns", &key, Event::Hit { saved }).unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("c.db-wal")).map_or(0, |m| m.len());
    assert!(
        wal <= super::db::WAL_LIMIT + 64 * 1024,
        "every run reads the whole WAL: {wal} bytes"
    );
    let store = SqliteStore::new(path, false);
    assert_eq!(store.counters().unwrap()["ns"].hits, 1200);
}

/// An entry of `stdout`, then `stderr`, under `key`.
fn put(store: &SqliteStore, key: Key, stdout: &[u8], stderr: &[u8]) {
    use crate::entry::{Meta, Run, Stream};
    let runs = [(Stream::Stdout, stdout), (Stream::Stderr, stderr)];
    let meta = Meta {
        stdout_len: stdout.len() as u64,
        stderr_len: stderr.len() as u64,
        runs: runs
            .iter()
            .filter(|(_, data)| !data.is_empty())
            .map(|&(stream, data)| Run {
                stream,
                len: data.len() as u64,
            })
            .collect(),
        ..Meta::blank(key)
    };
    let mut spool = store.begin(&key).unwrap();
    for (stream, data) in runs {
        spool.write(stream, data).unwrap();
    }
    spool.commit(&meta).unwrap();
}

fn fetched(found: crate::store::Found) -> anyhow::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut body = found.body.fetch()?;
    body.file.seek(SeekFrom::Start(body.start))?;
    let mut out = Vec::new();
    body.file.read_to_end(&mut out)?;
    Ok(out)
}

/// A small entry comes whole with its lookup, in one snapshot: removing it
/// before the fetch takes nothing away. A big one is fetched when served,
/// and says it changed if it was removed meanwhile.
#[test]
fn a_small_entry_comes_with_its_lookup() {
    let (dir, store) = store();
    let (small, both, big) = (Key([3; 32]), Key([6; 32]), Key([4; 32]));
    let big_out = vec![b'x'; super::body::INLINE as usize + 1];
    put(&store, small, b"hi\n", b"");
    put(&store, both, b"out\n", b"err\n");
    put(&store, big, &big_out, b"");
    drop(store);
    let path = dir.path().join("sub/c.db");
    let reader = SqliteStore::new(path.clone(), false);
    let (found_small, found_both, found_big) = (
        reader.get(&small).unwrap().unwrap(),
        reader.get(&both).unwrap().unwrap(),
        reader.get(&big).unwrap().unwrap(),
    );
    // As another process would (a writer of this one shares the read-only
    // `-shm` of the lookup connection: see reader.rs).
    reader.db.close_reader();
    let other = SqliteStore::new(path, false);
    assert!(other.remove(&small, "").unwrap() > 0);
    assert!(other.remove(&both, "").unwrap() > 0);
    other.remove(&big, "").unwrap();
    assert_eq!(fetched(found_small).unwrap(), b"hi\n");
    assert_eq!(fetched(found_both).unwrap(), b"out\nerr\n");
    let err = format!("{:#}", fetched(found_big).unwrap_err());
    assert!(err.contains("changed while it was read"), "{err}");
}

/// The chunks that come with a lookup are checked as fetched ones are.
#[test]
fn a_small_entry_with_a_damaged_chunk_is_corrupt() {
    let (dir, store) = store();
    let key = Key([5; 32]);
    put(&store, key, b"hello\n", b"");
    drop(store);
    let path = dir.path().join("sub/c.db");
    let damage = |sql: &str| {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let store = SqliteStore::new(path.clone(), false);
        let found = store.get(&key).unwrap().unwrap();
        let err = fetched(found).unwrap_err();
        err.downcast::<crate::entry::Corrupt>().unwrap().why
    };
    assert_eq!(damage("UPDATE chunks SET data = x'6869'"), "truncated");
    assert_eq!(
        damage("UPDATE chunks SET data = 'hello' || char(10)"),
        "a chunk is not a blob"
    );
    assert_eq!(damage("UPDATE chunks SET seq = 1"), "a chunk is missing");
    assert_eq!(damage("DELETE FROM chunks"), "truncated");
}
