//! The mongo suite's server: a database per test on the server in
//! `CACHIER_TEST_MONGO_URL`, and the hooks that inspect or damage its
//! entries (documents in `cachier`, chunks in `cachier.chunks`, a small
//! body in its entry's document).
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use mongodb::bson::{Binary, Bson, Document, doc, spec::BinarySubtype};
use mongodb::sync::{Client, Collection, Database};

use super::require;

/// Where the test MongoDB server is, if it is set.
pub fn mongo_url() -> Option<String> {
    std::env::var("CACHIER_TEST_MONGO_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

pub fn available() -> bool {
    require("mongo", mongo_url().is_some(), "CACHIER_TEST_MONGO_URL")
}

/// The database private to the test in `dir`: named after the temp dir.
pub fn mongo_db(dir: &Path) -> String {
    let name = dir.file_name().unwrap().to_string_lossy();
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("cachier_t_{hex}")
}

/// `url` with its database replaced by `db`.
pub fn mongo_url_for(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let prefix = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{prefix}/{db}{query}")
}

/// The URL the test in `dir` gives cachier.
pub fn mongo_test_url(dir: &Path) -> String {
    mongo_url_for(
        &mongo_url().expect("CACHIER_TEST_MONGO_URL"),
        &mongo_db(dir),
    )
}

/// One client for every test of this process.
fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::with_uri_str(mongo_url().expect("CACHIER_TEST_MONGO_URL"))
            .unwrap_or_else(|e| panic!("cannot reach the test MongoDB server: {e}"))
    })
}

/// The database of the test in `dir`.
pub fn mongo_test_db(dir: &Path) -> Database {
    client().database(&mongo_db(dir))
}

fn entries(dir: &Path) -> Collection<Document> {
    mongo_test_db(dir).collection("cachier")
}

fn chunks(dir: &Path) -> Collection<Document> {
    mongo_test_db(dir).collection("cachier.chunks")
}

pub fn set_up(_dir: &Path) {
    // The database comes into being with cachier's first write.
}

pub fn tear_down(dir: &Path) {
    if mongo_url().is_some() {
        let _ = mongo_test_db(dir).drop().run();
    }
}

pub fn env(dir: &Path) -> Vec<(String, String)> {
    vec![("CACHIER_MONGO_URL".to_string(), mongo_test_url(dir))]
}

pub fn age_entries(dir: &Path, by: Duration) {
    let ms = by.as_millis() as i64;
    entries(dir)
        .update_many(doc! {}, doc! { "$inc": { "created": -ms } })
        .run()
        .unwrap();
}

/// Damage the body of every entry: `truncate` deletes its last chunk (or
/// the last byte of a body held in the entry), otherwise the first byte of
/// its first chunk (or of its body) is flipped.
pub fn damage_entries(dir: &Path, truncate: bool) {
    let mut damaged = 0;
    for entry in entries(dir).find(doc! {}).run().unwrap() {
        let entry = entry.unwrap();
        if let Ok(body) = entry.get_binary_generic("body") {
            let mut body = body.clone();
            if truncate {
                body.pop();
            } else {
                body[0] ^= 0x55;
            }
            let body = Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: body,
            });
            let id = doc! { "_id": entry.get("_id").unwrap().clone() };
            entries(dir)
                .update_one(id, doc! { "$set": { "body": body } })
                .run()
                .unwrap();
            damaged += 1;
            continue;
        }
        let filter = doc! { "key": entry.get("_id").unwrap().clone(), "gen": entry.get("gen").unwrap().clone() };
        let order = if truncate { -1 } else { 1 };
        let chunk = chunks(dir)
            .find_one(filter)
            .sort(doc! { "seq": order })
            .run()
            .unwrap();
        let Some(chunk) = chunk else { continue };
        let id = doc! { "_id": chunk.get_object_id("_id").unwrap() };
        if truncate {
            chunks(dir).delete_one(id).run().unwrap();
        } else {
            let mut data = chunk.get_binary_generic("data").unwrap().clone();
            data[0] ^= 0x55;
            let data = Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: data,
            });
            chunks(dir)
                .update_one(id, doc! { "$set": { "data": data } })
                .run()
                .unwrap();
        }
        damaged += 1;
    }
    assert!(damaged > 0, "no entry to damage");
}

pub fn count_entries(dir: &Path) -> usize {
    entries(dir).count_documents(doc! {}).run().unwrap() as usize
}

/// A MongoDB-protocol server, one database per test.
pub struct Mongo;

super::hooks_from_module!(Mongo, "mongo");
