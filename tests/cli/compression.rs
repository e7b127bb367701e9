//! Bodies sent to a server are zstd-compressed unless `compression =
//! "none"`: replay is exact either way, an entry written one way reads back
//! on a client set the other way, and the server holds fewer bytes for text
//! (asked of the server itself).
use std::path::Path;

use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, pg_client, pg_test_url, redis_prefix, redis_url};
use crate::harness::*;

/// Text much like a build log, then every byte value, then a line with no end.
fn blob() -> Vec<u8> {
    let mut blob = Vec::new();
    for n in 0..4000 {
        blob.extend_from_slice(
            format!(
                "{n:6} -rw-r--r-- 1 root root {:8} /usr/lib/x86_64-linux-gnu/lib{}.so.{}\n",
                n * 37,
                n % 97,
                n % 7
            )
            .as_bytes(),
        );
    }
    blob.extend((0..=255u8).cycle().take(4096));
    blob.extend_from_slice(b"no newline \xff\xfe");
    blob
}

/// Writer and reader settings, each way round: the entry says how it is stored.
fn replays_exactly_and_reads_across(env: &Env, stored: fn(&Path) -> u64) {
    let blob = blob();
    std::fs::write(env.path("blob"), &blob).unwrap();
    let script = "echo $$ >> \"$COUNT\"; cat blob; cat blob >&2; exit 0";
    let mut held = Vec::new();
    for (writer, reader) in [
        ("zstd", "none"),
        ("none", "zstd"),
        ("zstd", "zstd"),
        ("none", "none"),
    ] {
        env.cachier(&["clear"]).assert().code(0);
        let runs = env.runs();
        for (setting, hit) in [(writer, false), (reader, true)] {
            let mut cmd = env.run_sh(&[], script);
            cmd.env("CACHIER_COMPRESSION", setting);
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(0));
            assert!(out.stdout == blob, "stdout of {writer} read by {reader}");
            assert!(out.stderr == blob, "stderr of {writer} read by {reader}");
            assert_eq!(env.runs(), runs + 1, "{writer} then {reader}: hit {hit}");
        }
        held.push((writer, stored(env.dir.path())));
    }
    let raw = 2 * blob.len() as u64;
    for (writer, bytes) in held {
        match writer {
            "none" => assert_eq!(bytes, raw, "raw bodies are stored as they came"),
            _ => assert!(bytes * 5 < raw, "zstd holds {bytes} bytes for {raw}"),
        }
    }
}

#[test]
fn redis_bodies_are_compressed() {
    let Some(env) = Env::try_new(Backend::Redis) else {
        return;
    };
    replays_exactly_and_reads_across(&env, |dir| {
        let mut conn = redis::Client::open(redis_url(false).unwrap())
            .and_then(|c| c.get_connection())
            .unwrap();
        let names: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{}:*}}:c:*", redis_prefix(dir)))
            .query(&mut conn)
            .unwrap();
        names
            .iter()
            .map(|n| redis::cmd("STRLEN").arg(n).query::<u64>(&mut conn).unwrap())
            .sum()
    });
}

#[test]
fn postgres_bodies_are_compressed() {
    let Some(env) = Env::try_new(Backend::Postgres) else {
        return;
    };
    replays_exactly_and_reads_across(&env, |dir| {
        let row = pg_client(&pg_test_url(dir))
            .query_one(
                "SELECT coalesce(sum(length(data)), 0)::bigint FROM cachier_chunks",
                &[],
            )
            .unwrap();
        row.get::<_, i64>(0) as u64
    });
}

#[cfg(feature = "mongo")]
#[test]
fn mongo_bodies_are_compressed() {
    let Some(env) = Env::try_new(Backend::Mongo) else {
        return;
    };
    replays_exactly_and_reads_across(&env, |dir| {
        use mongodb::bson::Document;
        crate::backend::mongo_test_db(dir)
            .collection::<Document>("cachier.chunks")
            .find(Document::new())
            .run()
            .unwrap()
            .map(|d| d.unwrap().get_binary_generic("data").unwrap().len() as u64)
            .sum()
    });
}

#[cfg(feature = "s3")]
#[test]
fn s3_bodies_are_compressed() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    replays_exactly_and_reads_across(&env, crate::backend::s3_body_bytes);
}

/// An output of at most 512 bytes goes raw whatever the setting: zstd
/// would save a few bytes, and every hit would pay for a decoder. One
/// byte more is compressed (zstd's frame magic leads the stored chunk).
#[test]
fn a_tiny_output_is_sent_raw() {
    let Some(env) = Env::try_new(Backend::Redis) else {
        return;
    };
    let chunks = |dir: &Path| -> Vec<Vec<u8>> {
        let mut conn = redis::Client::open(redis_url(false).unwrap())
            .and_then(|c| c.get_connection())
            .unwrap();
        let names: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{}:*}}:c:*", redis_prefix(dir)))
            .query(&mut conn)
            .unwrap();
        names
            .iter()
            .map(|n| redis::cmd("GET").arg(n).query(&mut conn).unwrap())
            .collect()
    };
    for (len, raw) in [(512usize, true), (513, false)] {
        env.cachier(&["clear"]).assert().code(0);
        let text = "x".repeat(len);
        for _ in 0..2 {
            env.run_sh(&[], &format!("printf {text}"))
                .env("CACHIER_COMPRESSION", "zstd")
                .assert()
                .code(0)
                .stdout(text.clone());
        }
        let held = chunks(env.dir.path());
        assert_eq!(held.len(), 1, "{len}");
        let zstd = held[0].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!((held[0] == text.as_bytes(), zstd), (raw, !raw), "{len}");
    }
}
