//! The MongoDB layout as documented: 1 MiB chunks under the entry's
//! generation, the indexes, a TTL only when entries go stale, and
//! `--mongo-collection`.
use assert_cmd::assert::OutputAssertExt;
use mongodb::bson::{Document, doc};

use crate::backend::{Backend, mongo_test_db};
use crate::harness::*;

#[test]
fn output_is_chunked_under_the_entrys_generation() {
    let Some(env) = Env::try_new(Backend::Mongo) else {
        return;
    };
    // 2.5 MiB of stdout and a line of stderr: chunks 0 and 1 full, 2 short.
    let script = "echo $$ >> \"$COUNT\"; head -c 2621440 /dev/zero; echo e >&2";
    // Raw bodies: the layout is of the bytes as they came.
    env.run_sh(&[], script)
        .env("CACHIER_COMPRESSION", "none")
        .assert()
        .code(0)
        .stderr("e\n");
    let db = mongo_test_db(env.dir.path());
    let entry = db
        .collection::<Document>("cachier")
        .find_one(doc! {})
        .run()
        .unwrap()
        .unwrap();
    let chunks: Vec<Document> = db
        .collection::<Document>("cachier.chunks")
        .find(doc! {})
        .sort(doc! { "seq": 1 })
        .run()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let sizes: Vec<usize> = chunks
        .iter()
        .map(|c| c.get_binary_generic("data").unwrap().len())
        .collect();
    assert_eq!(sizes, [1 << 20, 1 << 20, (1 << 19) + 2]);
    for (seq, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.get_i32("seq").unwrap(), seq as i32);
        assert_eq!(chunk.get("key"), entry.get("_id"));
        assert_eq!(chunk.get("gen"), entry.get("gen"));
    }
    // No TTL without --stale-after.
    assert!(!entry.contains_key("expires_at"));
    assert!(chunks.iter().all(|c| !c.contains_key("expires_at")));
    // Overwriting publishes a new generation and drops the old one's chunks.
    env.run_sh(&["--overwrite"], script)
        .env("CACHIER_COMPRESSION", "none")
        .assert()
        .code(0);
    let chunks = db.collection::<Document>("cachier.chunks");
    assert_eq!(chunks.count_documents(doc! {}).run().unwrap(), 3);
    assert_eq!(
        chunks
            .count_documents(doc! { "gen": entry.get("gen").unwrap() })
            .run()
            .unwrap(),
        0
    );
    assert_eq!(env.runs(), 2);
}

#[test]
fn stale_after_sets_a_ttl_well_past_staleness() {
    let Some(env) = Env::try_new(Backend::Mongo) else {
        return;
    };
    // Past 64 KiB stored (random bytes do not compress): in chunks.
    let out = env
        .run_sh(&["--stale-after", "1h"], "head -c 70000 /dev/urandom")
        .output()
        .unwrap();
    assert_eq!((out.status.code(), out.stdout.len()), (Some(0), 70000));
    let db = mongo_test_db(env.dir.path());
    let entry = db
        .collection::<Document>("cachier")
        .find_one(doc! {})
        .run()
        .unwrap()
        .unwrap();
    let created = entry.get_i64("created").unwrap();
    let expires = entry.get_datetime("expires_at").unwrap().timestamp_millis();
    assert_eq!(expires - created, 25 * 3600 * 1000, "1 h + 1 day");
    let chunk = db
        .collection::<Document>("cachier.chunks")
        .find_one(doc! {})
        .run()
        .unwrap()
        .unwrap();
    assert_eq!(
        chunk.get_datetime("expires_at").unwrap().timestamp_millis(),
        expires
    );
    // The indexes: namespace, (key, gen, seq) unique, TTL on expires_at.
    let names = |coll: &str| -> Vec<String> {
        db.collection::<Document>(coll)
            .list_index_names()
            .run()
            .unwrap()
    };
    let entries = names("cachier");
    assert!(entries.contains(&"ns_1".to_string()), "{entries:?}");
    assert!(entries.contains(&"expires_at_1".to_string()), "{entries:?}");
    let chunks = names("cachier.chunks");
    assert!(
        chunks.contains(&"key_1_gen_1_seq_1".to_string()),
        "{chunks:?}"
    );
    assert!(chunks.contains(&"expires_at_1".to_string()), "{chunks:?}");
}

#[test]
fn mongo_collection_names_the_collections() {
    let Some(env) = Env::try_new(Backend::Mongo) else {
        return;
    };
    let flags = ["--mongo-collection", "team"];
    let mut args = flags.to_vec();
    args.extend(["run", "--", "sh", "-c"]);
    let script = counted("mine");
    args.push(&script);
    for _ in 0..2 {
        env.cachier(&args)
            .env("COUNT", env.path("count"))
            .assert()
            .code(0)
            .stdout("mine");
    }
    assert_eq!(env.runs(), 1);
    let db = mongo_test_db(env.dir.path());
    let count = |coll: &str| {
        db.collection::<Document>(coll)
            .count_documents(doc! {})
            .run()
            .unwrap()
    };
    // A small body rides in its entry's document: no chunk.
    assert_eq!((count("team"), count("team.chunks")), (1, 0));
    assert_eq!(count("cachier"), 0);
    let path = env.stdout(&["--mongo-collection", "team", "path"]);
    assert!(path.ends_with("(collection team)\n"), "{path}");
    // The variable names it too.
    let out = env
        .run_sh(&[], &script)
        .env("CACHIER_MONGO_COLLECTION", "team")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"mine");
    assert_eq!(env.runs(), 1);
}
