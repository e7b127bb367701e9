//! What the SQLite store leaves on disk between runs: an empty WAL once a
//! run or command has written, and the tables of its schema version (a
//! database of the first version still works).
use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, sqlite};
use crate::harness::*;

/// The tables of the test's database, sorted.
fn tables(env: &Env) -> Vec<String> {
    let db = sqlite(env.dir.path());
    let mut select = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    select
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Every process parses every table of the file before its first
/// statement: a new database has only the tables a hit or a write uses.
#[test]
fn a_new_database_has_no_table_a_run_does_not_use() {
    let env = Env::new(Backend::Sqlite);
    env.run_sh(&[], &counted("out\n")).assert().code(0);
    assert_eq!(
        tables(&env),
        [
            "chunks",
            "entries",
            "pending",
            "schema_version",
            "sqlite_sequence"
        ]
    );
    let db = sqlite(env.dir.path());
    let version = |sql| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(version("SELECT version FROM schema_version"), 2);
    assert_eq!(version("PRAGMA user_version"), 2, "a hit reads it here");
}

/// A database made by the first version (its `counters` and `marks` tables
/// too, schema version 1) keeps serving, and what it counted is added in.
#[test]
fn a_first_version_database_still_serves_and_counts() {
    let env = Env::new(Backend::Sqlite);
    let script = counted("out\n");
    env.run_sh(&[], &script).assert().code(0).stdout("out\n");
    sqlite(env.dir.path())
        .execute_batch(
            "CREATE TABLE counters (
                namespace TEXT PRIMARY KEY,
                hits INTEGER NOT NULL DEFAULT 0,
                misses INTEGER NOT NULL DEFAULT 0,
                waits INTEGER NOT NULL DEFAULT 0,
                stale_serves INTEGER NOT NULL DEFAULT 0,
                saved_ms INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE marks (what TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
            INSERT INTO counters (namespace, hits, misses) VALUES ('old', 7, 2);
            UPDATE schema_version SET version = 1;
            PRAGMA user_version = 0;",
        )
        .unwrap();
    for _ in 0..2 {
        env.run_sh(&[], &script)
            .assert()
            .code(0)
            .stdout("out\n")
            .stderr("");
    }
    assert_eq!(env.runs(), 1, "the first version's entry was served");
    assert_eq!(
        (env.stat("total", "hits"), env.stat("total", "misses")),
        (9, 3)
    );
    assert_eq!(env.stat("old", "hits"), 7);
    env.cachier(&["stats", "--reset"]).assert().code(0);
    assert_eq!(env.stat("total", "hits"), 0);
    env.cachier(&["gc"]).assert().code(0);
    assert_eq!(env.json(&["ls", "--json"]).as_array().unwrap().len(), 1);
    env.cachier(&["clear"]).assert().code(0);
    env.run_sh(&[], &script).assert().code(0).stdout("out\n");
    assert_eq!(env.runs(), 2, "clear removed the entry");
    assert!(
        tables(&env).contains(&"counters".to_string()),
        "left as it was"
    );
}

/// Every process opening the database re-reads each WAL frame before its
/// first read (the first user of the database resets SQLite's shared
/// index), so a run that wrote folds the WAL back and empties it as it ends.
#[test]
fn a_run_or_command_that_wrote_leaves_the_wal_empty() {
    let env = Env::new(Backend::Sqlite);
    let wal = env.path("cache/cachier.db-wal");
    let frames = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let script = counted("out\n");
    env.run_sh(&[], &script).assert().code(0).stdout("out\n");
    assert_eq!(frames(), 0, "the miss left its writes in the WAL");
    for _ in 0..2 {
        env.run_sh(&[], &script)
            .assert()
            .code(0)
            .stdout("out\n")
            .stderr("");
    }
    assert_eq!(env.runs(), 1, "the entry was folded into the database");
    assert_eq!(frames(), 0);
    env.cachier(&["clear"]).assert().code(0);
    assert_eq!(frames(), 0, "clear left its writes in the WAL");
    env.run_sh(&[], &script).assert().code(0).stdout("out\n");
    assert_eq!(env.runs(), 2, "clear removed the entry");
    assert_eq!(frames(), 0);
}
