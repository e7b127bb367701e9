//! SQLite lookups pooled through the daemon (`store/pool`): the daemon
//! keeps the database open between runs and says so in its status; a
//! database removed since is never read through it.
use assert_cmd::assert::OutputAssertExt;

use crate::backend::Backend;
use crate::harness::*;

/// One run of the counted script printing `what`: exit 0, nothing else.
fn says(env: &Env, what: &str) {
    env.run_sh(&[], &counted(what))
        .assert()
        .code(0)
        .stdout(what.to_string())
        .stderr("");
}

fn database(env: &Env) -> std::path::PathBuf {
    env.dir.path().join("cache").join("cachier.db")
}

#[test]
fn hits_go_through_the_daemons_open_database() {
    let env = Env::new(Backend::PooledSqlite);
    for _ in 0..3 {
        says(&env, "hi");
    }
    assert_eq!(env.runs(), 1);
    let out = env.cachier(&["daemon", "status"]).output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    let db = database(&env).display().to_string();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("pooled") && l.contains(&db)),
        "the daemon keeps no {db} open:\n{status}"
    );
    assert_eq!(env.stat("sh", "hits"), 2);
}

#[test]
fn a_removed_database_is_not_read_through_the_daemon() {
    let env = Env::new(Backend::PooledSqlite);
    says(&env, "hi");
    says(&env, "hi");
    assert_eq!(env.runs(), 1);
    // The daemon still has the removed file open: a hit from it would be
    // an entry the user deleted.
    for suffix in ["", "-wal", "-shm"] {
        let mut path = database(&env).into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
    says(&env, "hi");
    assert_eq!(env.runs(), 2, "a hit from the removed database");
    // The new database serves hits through the daemon again.
    says(&env, "hi");
    assert_eq!(env.runs(), 2);
}
