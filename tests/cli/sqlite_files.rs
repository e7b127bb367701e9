//! What the SQLite store leaves on disk between runs: an empty WAL once a
//! run or command has written.
use assert_cmd::assert::OutputAssertExt;

use crate::backend::Backend;
use crate::harness::*;

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
