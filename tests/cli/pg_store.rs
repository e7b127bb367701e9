//! What only the PostgreSQL store has: bodies split into rows of 1 MiB,
//! waits made of lock requests of at most 2 s each.
use std::time::Duration;

use crate::backend::{Backend, pg_client, pg_test_url};
use crate::harness::*;
use assert_cmd::prelude::*;

#[test]
fn a_body_over_many_rows_round_trips() {
    let Some(env) = Env::try_new(Backend::Postgres) else {
        return;
    };
    // 2.5 MiB of stdout and 1 MiB of stderr: four rows, one shared by both.
    let out: Vec<u8> = (0..=255u8).cycle().take(5 << 19).collect();
    let err: Vec<u8> = (0..=250u8).rev().cycle().take(1 << 20).collect();
    std::fs::write(env.path("out"), &out).unwrap();
    std::fs::write(env.path("err"), &err).unwrap();
    let script = "echo $$ >> \"$COUNT\"; cat out; cat err >&2";
    for _ in 0..2 {
        // Raw bodies: the layout is of the bytes as they came.
        let got = env
            .run_sh(&[], script)
            .env("CACHIER_COMPRESSION", "none")
            .output()
            .unwrap();
        assert_eq!(got.status.code(), Some(0));
        assert!(got.stdout == out, "stdout differs");
        assert!(got.stderr == err, "stderr differs");
    }
    assert_eq!(env.runs(), 1);
    let row = pg_client(&pg_test_url(env.dir.path()))
        .query_one(
            "SELECT count(*), max(length(data)), sum(length(data))::bigint FROM cachier_chunks",
            &[],
        )
        .unwrap();
    let (rows, largest, total): (i64, i32, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((rows, largest, total), (4, 1 << 20, (7 << 19) as i64));
}

#[test]
fn a_wait_longer_than_one_lock_request_still_replays_the_owners_result() {
    let Some(env) = Env::try_new(Backend::Postgres) else {
        return;
    };
    let script = format!("echo $$ >> \"$COUNT\"; {}; echo done", until_go());
    let (owner, _owner_lines) = spawn_watching_stderr(env.run_sh(&[], &script));
    await_until("the owner runs the command", || env.runs() == 1);
    let (waiter, lines) = spawn_watching_stderr(env.run_sh(&["--verbose"], &script));
    expect_line(&lines, "waiting for");
    // Longer than one lock request (2 s): the waiter asks again, and again.
    std::thread::sleep(Duration::from_secs(5));
    touch(&env.path("go"));
    for child in [owner, waiter] {
        let out = wait_within(child, Duration::from_secs(30));
        assert_eq!(
            (out.status.code(), &out.stdout[..]),
            (Some(0), &b"done\n"[..])
        );
    }
    assert_eq!(env.runs(), 1, "the waiter replayed the owner's result");
}

/// One connection a process: a miss's lookup, claim and store share it,
/// and so do a waiter's wait and its takeover of a killed owner's claim (a
/// connection of its own for each claim cost PostgreSQL a backend start,
/// ~5 ms, on every miss and before every takeover).
#[test]
fn a_process_opens_one_connection() {
    let Some(env) = Env::try_new(Backend::Postgres) else {
        return;
    };
    crate::conformance::killed_owner_frees_waiters_at_once(&env);
    let script = format!("{}; {}; echo done", "echo $$ >> \"$COUNT\"", until_go());
    env.run_sh(&[], &script).assert().stdout("done\n");
    assert_eq!(env.runs(), 2);
    // Sessions are counted as they start; wait for all three processes'
    // to end, then read the count from outside the test's database.
    let db = crate::backend::pg_db(env.dir.path());
    let mut admin = pg_client(&crate::backend::pg_url().expect("CACHIER_TEST_PG_URL"));
    await_until("the test's sessions end", || {
        let open: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&db],
            )
            .unwrap()
            .get(0);
        open == 0
    });
    let sessions: i64 = admin
        .query_one(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .unwrap()
        .get(0);
    assert_eq!(sessions, 3, "owner, waiter, and the run that hit");
}
