//! S3 failures: throttling (503 SlowDown) retried a bounded number of times
//! through a loopback proxy that throttles before it forwards to the real
//! server, a part refused mid-upload (the upload aborted, nothing stored),
//! and a bucket that is missing or forbidden, each one warning line with
//! the command's output intact and no secret shown.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, SECRET, s3_names, s3_uploads, s3_url};
use crate::harness::*;

/// A loopback HTTP front: its first `fail` requests get `status` with S3
/// error `code` (and `Connection: close`); later connections are forwarded
/// to `target` (none if `None`), less any header named in `strip`. Counts
/// the requests it saw (moto closes every connection after one request).
struct Front {
    url: String,
    seen: Arc<AtomicUsize>,
}

fn front(
    status: u16,
    code: &'static str,
    fail: usize,
    target: Option<String>,
    strip: &'static [&'static str],
) -> Front {
    front_failing(status, code, target, strip, move |n, _| n < fail)
}

/// [`front`], failing the requests `fails` picks by their number and
/// request line.
fn front_failing(
    status: u16,
    code: &'static str,
    target: Option<String>,
    strip: &'static [&'static str],
    fails: impl Fn(usize, &str) -> bool + Send + 'static,
) -> Front {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let Some(request) = read_request(&mut conn) else {
                continue;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let line = String::from_utf8_lossy(&request[..request.len().min(4096)]);
            let line = line.lines().next().unwrap_or("");
            match &target {
                Some(t) if !fails(n, line) => forward(conn, t, &without(&request, strip)),
                _ => {
                    let body = format!("<Error><Code>{code}</Code><Message>test</Message></Error>");
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        }
    });
    Front { url, seen }
}

/// One request's head and body, read whole.
fn read_request(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut byte).ok().filter(|&n| n > 0)?;
                buf.extend_from_slice(&byte[..n]);
            }
            return Some(buf);
        }
        let n = conn.read(&mut byte).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&byte[..n]);
    }
}

/// `request` less the header lines named in `strip` (lowercase).
fn without(request: &[u8], strip: &[&str]) -> Vec<u8> {
    let end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&request[..end]);
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| {
            !strip
                .iter()
                .any(|s| l.to_ascii_lowercase().starts_with(&format!("{s}:")))
        })
        .collect();
    let mut out = kept.join("\r\n").into_bytes();
    out.extend_from_slice(&request[end..]);
    out
}

fn forward(client: TcpStream, target: &str, first: &[u8]) {
    let Ok(mut server) = TcpStream::connect(target) else {
        return;
    };
    if server.write_all(first).is_err() {
        return;
    }
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut server);
    });
    std::thread::spawn(move || {
        let mut client = client;
        let _ = std::io::copy(&mut s2, &mut client);
    });
}

fn one_run(env: &Env, endpoint: &str, text: &str) -> (Vec<u8>, String) {
    let mut cmd = env.run_sh(&[], &counted(text));
    cmd.env("CACHIER_S3_ENDPOINT", endpoint);
    let (out, _) = output_within(cmd, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains(SECRET), "{stderr}");
    assert!(!stderr.contains("X-Amz-"), "{stderr}");
    (out.stdout, stderr)
}

#[test]
fn slowdown_is_retried_then_served() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let target = s3_url().unwrap().trim_start_matches("http://").to_string();
    let front = front(503, "SlowDown", 3, Some(target), &[]);
    for _ in 0..2 {
        let (stdout, stderr) = one_run(&env, &front.url, "hi");
        assert_eq!((&stdout[..], stderr.as_str()), (&b"hi"[..], ""));
    }
    assert_eq!(env.runs(), 1, "the second run is a hit");
    assert!(front.seen.load(Ordering::SeqCst) > 3);
}

#[test]
fn endless_slowdown_is_given_up_after_bounded_retries() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let front = front(503, "SlowDown", usize::MAX, None, &[]);
    let (stdout, stderr) = one_run(&env, &front.url, "hi");
    assert_eq!(stdout, b"hi");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("HTTP 503 SlowDown"), "{stderr}");
    // Each request is tried 5 times at most (4 retries).
    assert_eq!(front.seen.load(Ordering::SeqCst) % 5, 0);
    assert_eq!(env.runs(), 1);
}

#[test]
fn a_part_refused_mid_upload_aborts_the_upload_and_stores_nothing() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let target = s3_url().unwrap().trim_start_matches("http://").to_string();
    // The second part of any upload is refused (not retried: a 400).
    let front = front_failing(400, "BadDigest", Some(target), &[], |_, line| {
        let query = line.split(['?', ' ']).nth(2).unwrap_or("");
        line.starts_with("PUT ") && query.split('&').any(|p| p == "partNumber=2")
    });
    // 12 MiB, stored raw: three parts.
    let script = "echo $$ >> \"$COUNT\"; head -c 12582912 /dev/zero | tr '\\0' x; echo e >&2";
    let mut cmd = env.run_sh(&[], script);
    cmd.env("CACHIER_S3_ENDPOINT", &front.url)
        .env("CACHIER_COMPRESSION", "none");
    let (out, _) = output_within(cmd, Duration::from_secs(60));
    assert_eq!(
        (
            out.status.code(),
            out.stdout.len(),
            out.stdout.ends_with(b"xx")
        ),
        (Some(0), 12582912, true)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let (first, warning) = stderr.split_once('\n').unwrap_or(("", ""));
    assert_eq!(first, "e", "{stderr}");
    assert_eq!(warning.lines().count(), 1, "{stderr}");
    assert!(
        warning.starts_with("cachier: warning: cannot store cache entry ")
            && warning.contains("HTTP 400 BadDigest"),
        "{stderr}"
    );
    // No entry, and no upload left to bill.
    let dir = env.dir.path();
    assert_eq!(s3_names(dir, "cachier/e/"), Vec::<String>::new());
    assert_eq!(s3_uploads(dir), Vec::<String>::new());
    // The next run (straight to the server) runs and stores it.
    env.run_sh(&[], script).assert().code(0);
    assert_eq!((env.runs(), env.count_entries()), (2, 1));
}

#[test]
fn a_throttled_part_is_sent_again_whole() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let target = s3_url().unwrap().trim_start_matches("http://").to_string();
    // The second part is throttled twice, then taken.
    let throttled = AtomicUsize::new(0);
    let front = front_failing(503, "SlowDown", Some(target), &[], move |_, line| {
        let query = line.split(['?', ' ']).nth(2).unwrap_or("");
        line.starts_with("PUT ")
            && query.split('&').any(|p| p == "partNumber=2")
            && throttled.fetch_add(1, Ordering::SeqCst) < 2
    });
    let script = "echo $$ >> \"$COUNT\"; head -c 12582912 /dev/zero | tr '\\0' x; echo e >&2";
    for _ in 0..2 {
        let mut cmd = env.run_sh(&[], script);
        cmd.env("CACHIER_S3_ENDPOINT", &front.url)
            .env("CACHIER_COMPRESSION", "none");
        let (out, _) = output_within(cmd, Duration::from_secs(60));
        assert_eq!(
            (out.status.code(), out.stdout.len(), &out.stderr[..]),
            (Some(0), 12582912, &b"e\n"[..])
        );
        assert!(out.stdout.iter().all(|&b| b == b'x'));
    }
    assert_eq!((env.runs(), env.count_entries()), (1, 1));
}

#[test]
fn a_forbidden_bucket_is_one_line_saying_so() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let front = front(403, "AccessDenied", usize::MAX, None, &[]);
    let (stdout, stderr) = one_run(&env, &front.url, "hi");
    assert_eq!(stdout, b"hi");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("HTTP 403 AccessDenied (access denied: check the credentials"),
        "{stderr}"
    );
    // Given up for the run: one request, not one per step.
    assert_eq!(front.seen.load(Ordering::SeqCst), 1);
}

#[test]
fn a_missing_bucket_is_one_line_saying_so() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let mut cmd = env.run_sh(&[], &counted("hi"));
    cmd.env("CACHIER_S3_URL", "s3://no-such-bucket-here/p");
    let (out, _) = output_within(cmd, Duration::from_secs(20));
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("HTTP 404 NoSuchBucket (the bucket does not exist"),
        "{stderr}"
    );
}

#[test]
fn a_store_that_ignores_conditional_writes_warns_that_single_flight_is_off() {
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let target = s3_url().unwrap().trim_start_matches("http://").to_string();
    let front = front(0, "", 0, Some(target), &["if-none-match", "if-match"]);
    let (stdout, stderr) = one_run(&env, &front.url, "hi");
    assert_eq!(stdout, b"hi");
    assert_eq!(
        stderr,
        format!(
            "cachier: warning: S3 at s3://{} ({}) ignores conditional writes \
             (If-None-Match): single-flight is off for it\n",
            crate::backend::s3_test_url(env.dir.path()).trim_start_matches("s3://"),
            front.url
        )
    );
    // Entries are still stored and served.
    let (stdout, stderr) = one_run(&env, &front.url, "hi");
    assert_eq!((&stdout[..], stderr.as_str()), (&b"hi"[..], ""));
    assert_eq!(env.runs(), 1);
}
