//! S3 failures: throttling (503 SlowDown) retried a bounded number of times
//! through a loopback front (`s3_front.rs`) that throttles before it
//! forwards to the real server, a part refused mid-upload (the upload
//! aborted, nothing stored), a writer SIGKILLed mid-upload (its upload left
//! on the bucket until `gc` aborts it), and a bucket that is missing or forbidden, each one warning line with
//! the command's output intact and no secret shown.
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, SECRET, s3_names, s3_uploads, s3_url};
use crate::harness::*;
use crate::s3_front::{Answer, front, front_answering, front_failing, puts_part};

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
        puts_part(line, 2)
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
fn a_writer_killed_mid_upload_leaves_an_upload_that_gc_aborts() {
    use std::os::unix::process::ExitStatusExt;
    let Some(env) = Env::try_new(Backend::S3) else {
        return;
    };
    let target = s3_url().unwrap().trim_start_matches("http://").to_string();
    // Everything is forwarded to the server but the second part of the
    // upload, held unanswered: the writer stalls with part 1 stored.
    let front = front_answering(0, "", Some(target), &[], |_, line| {
        if puts_part(line, 2) {
            Answer::Hold
        } else {
            Answer::Forward
        }
    });
    // 12 MiB, stored raw: three parts.
    let script = "echo $$ >> \"$COUNT\"; head -c 12582912 /dev/zero | tr '\\0' x";
    let mut cmd = env.run_sh(&[], script);
    cmd.env("CACHIER_S3_ENDPOINT", &front.url)
        .env("CACHIER_COMPRESSION", "none");
    let mut writer = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let held = front.held.recv_timeout(Duration::from_secs(60));
    writer.kill().unwrap(); // SIGKILL, whether or not it got that far
    let out = wait_within(writer, Duration::from_secs(10));
    assert!(held.is_ok(), "the writer never sent its second part");
    assert_eq!(out.status.signal(), Some(9));
    // Left on the bucket: an upload of the entry, begun and never
    // completed; no entry.
    let dir = env.dir.path();
    let uploads = s3_uploads(dir);
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert!(uploads[0].starts_with("cachier/e/"), "{uploads:?}");
    assert_eq!(s3_names(dir, "cachier/e/"), Vec::<String>::new());
    // gc aborts an upload begun over an hour ago. (moto 5.2.1 dates every
    // upload 2010-11-10T20:48:33Z in ListMultipartUploads, so this one is.)
    let (out, _) = output_within(env.cachier(&["gc"]), Duration::from_secs(30));
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stderr)),
        (Some(0), "".into())
    );
    assert_eq!(s3_uploads(dir), Vec::<String>::new());
    // The next run takes the dead writer's claim over once its lease
    // lapses, and stores the key.
    let (out, _) = output_within(env.run_sh(&[], script), Duration::from_secs(60));
    assert_eq!((out.status.code(), out.stdout.len()), (Some(0), 12582912));
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
        puts_part(line, 2) && throttled.fetch_add(1, Ordering::SeqCst) < 2
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
