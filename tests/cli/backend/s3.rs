//! The s3 suite's server: the S3 endpoint in `CACHIER_TEST_S3_URL` (moto,
//! started by `scripts/test`), a bucket per test named after its temp dir,
//! and the hooks that inspect or damage its entry objects (`cachier/e/…`:
//! magic, created ms, meta length, meta, body), through signed requests.
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusty_s3::actions::{CreateBucket, DeleteObject, GetObject, ListObjectsV2, PutObject};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::require;

/// The test key pair (moto takes any; this secret must never be printed).
pub const KEY_ID: &str = "AKIATESTCACHIER";
pub const SECRET: &str = "s3cr3t-never-printed";

/// The test S3 endpoint, if set.
pub fn s3_url() -> Option<String> {
    std::env::var("CACHIER_TEST_S3_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

pub fn available() -> bool {
    require("s3", s3_url().is_some(), "CACHIER_TEST_S3_URL")
}

/// The bucket private to the test in `dir`.
pub fn s3_bucket(dir: &Path) -> String {
    let name = dir.file_name().unwrap().to_string_lossy();
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("cachier-t-{hex}")
}

fn bucket(dir: &Path) -> Bucket {
    let url = s3_url().expect("CACHIER_TEST_S3_URL").parse().unwrap();
    Bucket::new(url, UrlStyle::Path, s3_bucket(dir), "us-east-1").unwrap()
}

fn creds() -> Credentials {
    Credentials::new(KEY_ID, SECRET)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Send a signed request; the status and the body.
fn send(method: &str, url: url::Url, body: &[u8]) -> (u16, Vec<u8>) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url.as_str())
        .body(body)
        .unwrap();
    let mut resp = agent().run(req).unwrap();
    let mut out = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut out).unwrap();
    (resp.status().as_u16(), out)
}

const HOUR: Duration = Duration::from_secs(3600);

/// The objects of the test's bucket whose names start with `prefix`.
pub fn s3_names(dir: &Path, prefix: &str) -> Vec<String> {
    s3_listing(dir, prefix)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// [`s3_names`], each with its ETag and size (what changes when an object
/// is written).
pub fn s3_listing(dir: &Path, prefix: &str) -> Vec<(String, String)> {
    let b = bucket(dir);
    let c = creds();
    let mut list = ListObjectsV2::new(&b, Some(&c));
    list.query_mut().remove("encoding-type");
    list.with_prefix(prefix.to_string());
    let (status, body) = send("GET", list.sign(HOUR), &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8(body).unwrap();
    let listing = ListObjectsV2::parse_response(&text).unwrap();
    assert!(
        listing.next_continuation_token.is_none(),
        "more than a page"
    );
    listing
        .contents
        .into_iter()
        .map(|o| {
            let version = format!("{:?} {:?}", o.etag, o.size);
            (o.key, version)
        })
        .collect()
}

/// The multipart uploads begun in the test's bucket and neither completed
/// nor aborted (ListMultipartUploads): their object names.
pub fn s3_uploads(dir: &Path) -> Vec<String> {
    let (b, c) = (bucket(dir), creds());
    let mut list = ListObjectsV2::new(&b, Some(&c));
    let q = list.query_mut();
    q.remove("list-type");
    q.remove("encoding-type");
    q.insert("uploads", "");
    let (status, body) = send("GET", list.sign(HOUR), &[]);
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("ListMultipartUploadsResult"), "{text}");
    text.split("<Upload>")
        .skip(1)
        .filter_map(|u| Some(u.split_once("<Key>")?.1.split_once("</Key>")?.0.to_string()))
        .collect()
}

pub fn s3_get(dir: &Path, name: &str) -> Vec<u8> {
    let (b, c) = (bucket(dir), creds());
    let (status, body) = send("GET", GetObject::new(&b, Some(&c), name).sign(HOUR), &[]);
    assert_eq!(status, 200);
    body
}

pub fn s3_put(dir: &Path, name: &str, data: &[u8]) {
    let (b, c) = (bucket(dir), creds());
    let (status, _) = send("PUT", PutObject::new(&b, Some(&c), name).sign(HOUR), data);
    assert_eq!(status, 200);
}

pub fn s3_delete(dir: &Path, name: &str) {
    let (b, c) = (bucket(dir), creds());
    let (status, _) = send(
        "DELETE",
        DeleteObject::new(&b, Some(&c), name).sign(HOUR),
        &[],
    );
    assert_eq!(status, 204);
}

pub fn set_up(dir: &Path) {
    let (b, c) = (bucket(dir), creds());
    let (status, body) = send("PUT", CreateBucket::new(&b, &c).sign(HOUR), &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

pub fn tear_down(dir: &Path) {
    if s3_url().is_none() {
        return;
    }
    let (b, c) = (bucket(dir), creds());
    for name in s3_names(dir, "") {
        send(
            "DELETE",
            DeleteObject::new(&b, Some(&c), &name).sign(HOUR),
            &[],
        );
    }
}

/// The URL the test in `dir` gives cachier.
pub fn s3_test_url(dir: &Path) -> String {
    format!("s3://{}/cachier", s3_bucket(dir))
}

pub fn env(dir: &Path) -> Vec<(String, String)> {
    [
        ("CACHIER_S3_URL", s3_test_url(dir)),
        ("CACHIER_S3_ENDPOINT", s3_url().unwrap_or_default()),
        ("AWS_ACCESS_KEY_ID", KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    s3_names(dir, "cachier/e/")
}

/// Where an entry object's body starts.
fn body_start(object: &[u8]) -> usize {
    20 + u32::from_be_bytes(object[16..20].try_into().unwrap()) as usize
}

pub fn age_entries(dir: &Path, by: Duration) {
    for name in entries(dir) {
        let mut object = s3_get(dir, &name);
        let created = u64::from_be_bytes(object[8..16].try_into().unwrap());
        let aged = created.saturating_sub(by.as_millis() as u64);
        object[8..16].copy_from_slice(&aged.to_be_bytes());
        s3_put(dir, &name, &object);
    }
}

/// Damage every entry: `truncate` drops its last byte, otherwise its first
/// body byte is flipped.
pub fn damage_entries(dir: &Path, truncate: bool) {
    let mut damaged = 0;
    for name in entries(dir) {
        let mut object = s3_get(dir, &name);
        let start = body_start(&object);
        if object.len() <= start {
            continue;
        }
        if truncate {
            object.pop();
        } else {
            object[start] ^= 0x55;
        }
        s3_put(dir, &name, &object);
        damaged += 1;
    }
    assert!(damaged > 0, "no entry to damage");
}

/// The bytes entry bodies take in the bucket (objects less their heads).
pub fn s3_body_bytes(dir: &Path) -> u64 {
    entries(dir)
        .iter()
        .map(|name| {
            let object = s3_get(dir, name);
            (object.len() - body_start(&object)) as u64
        })
        .sum()
}

pub fn count_entries(dir: &Path) -> usize {
    entries(dir).len()
}

/// An S3 bucket on the test endpoint, one per test.
pub struct S3;

super::hooks_from_module!(S3, "s3");
