//! What only the PostgreSQL store has: bodies split into rows of 1 MiB.
use crate::backend::{Backend, pg_client, pg_test_url};
use crate::harness::*;

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
        let got = env.run_sh(&[], script).output().unwrap();
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
