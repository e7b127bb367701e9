//! The S3 layout as documented (one object per entry, multipart when big,
//! an index object per namespace), counters that lose nothing under 32
//! concurrent writers, waiters woken by the entry itself, and each source of the credential chain against
//! loopback servers (moto's STS, a metadata endpoint the test serves).
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, s3_delete, s3_get, s3_names, s3_put, s3_url};
use crate::harness::*;

fn s3_env() -> Option<Env> {
    Env::try_new(Backend::S3)
}

#[test]
fn a_big_output_is_one_object_uploaded_in_parts() {
    let Some(env) = s3_env() else { return };
    // 12 MiB of stdout (three parts of 5 MiB at most) and a line of
    // stderr, stored raw so the object shows them.
    let script = "echo $$ >> \"$COUNT\"; head -c 12582912 /dev/zero | tr '\\0' x; echo e >&2";
    let raw = |mut cmd: std::process::Command| {
        cmd.env("CACHIER_COMPRESSION", "none");
        cmd.output().unwrap()
    };
    let out = raw(env.run_sh(&[], script));
    assert_eq!(
        (out.status.code(), out.stdout.len(), &out.stderr[..]),
        (Some(0), 12582912, &b"e\n"[..])
    );
    let objects = s3_names(env.dir.path(), "cachier/e/");
    assert_eq!(objects.len(), 1);
    assert_eq!(s3_names(env.dir.path(), "cachier/n/").len(), 1);
    let object = s3_get(env.dir.path(), &objects[0]);
    assert_eq!(&object[..8], b"CACHIER\x01");
    assert!(object.ends_with(b"xxxxe\n"));
    let hit = raw(env.run_sh(&[], script));
    assert_eq!(hit.stdout, out.stdout);
    assert_eq!(hit.stderr, b"e\n");
    assert_eq!(env.runs(), 1);
    // gc sweeps (aborts old uploads, folds counters) without error.
    env.cachier(&["gc"]).assert().code(0);
    assert_eq!(env.count_entries(), 1);
}

#[test]
fn a_waiter_wakes_on_the_stored_entry_while_the_claim_is_still_held() {
    let Some(env) = s3_env() else { return };
    let dir = env.dir.path().to_path_buf();
    let script = "echo $$ >> \"$COUNT\"; echo out";
    env.run_sh(&[], script).assert().code(0).stdout("out\n");
    let entry = s3_names(&dir, "cachier/e/").remove(0);
    let object = s3_get(&dir, &entry);
    s3_delete(&dir, &entry);
    // A live claim on the key, kept fresh (its lease never lapses) by a
    // thread standing in for an owner on another machine.
    let claim = entry.replace("cachier/e/", "cachier/claim/");
    let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let renewer = {
        let (dir, claim, held) = (dir.clone(), claim.clone(), held.clone());
        std::thread::spawn(move || {
            while held.load(std::sync::atomic::Ordering::SeqCst) {
                s3_put(&dir, &claim, b"elsewhere\t1\t00000000000000ff");
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let (waiter, lines) = spawn_watching_stderr(env.run_sh(&["--verbose"], script));
    expect_line(&lines, "waiting for");
    // The owner's result is stored; its claim is still there.
    s3_put(&dir, &entry, &object);
    let out = wait_within(waiter, Duration::from_secs(20));
    held.store(false, std::sync::atomic::Ordering::SeqCst);
    renewer.join().unwrap();
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"out\n"[..])
    );
    assert_eq!(env.runs(), 1, "the waiter replayed the entry");
}

#[test]
fn incompressible_output_of_several_parts_replays_exactly() {
    let Some(env) = s3_env() else { return };
    // 11 MiB that zstd cannot shrink: stored a little bigger than it came,
    // in three parts, read back in two ranges.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..11 << 20)
        .map(|_| {
            // xorshift64: bytes with no pattern to find.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    std::fs::write(env.path("noise"), &noise).unwrap();
    let script = "echo $$ >> \"$COUNT\"; cat noise; echo e >&2";
    for _ in 0..2 {
        let out = env.run_sh(&[], script).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout == noise, "stdout differs");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "e\n",
            "nothing but the command's stderr"
        );
    }
    assert_eq!(env.runs(), 1);
    let stored = crate::backend::s3_body_bytes(env.dir.path());
    assert!(stored > 5 << 20, "{stored} bytes stored");
}

#[test]
fn counters_lose_nothing_under_32_concurrent_writers() {
    let Some(env) = s3_env() else { return };
    env.run_sh(&[], &counted("hi")).assert().code(0);
    let mut children = Vec::new();
    for i in 0..32 {
        let mut cmd = if i % 8 == 0 {
            // Folds racing the writers.
            env.cachier(&["stats", "--json"])
        } else {
            env.run_sh(&[], &counted("hi"))
        };
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        children.push(cmd.spawn().unwrap());
    }
    let hits = children.len() - 4;
    for child in children {
        let out = wait_within(child, Duration::from_secs(120));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(env.runs(), 1);
    assert_eq!(env.stat("sh", "hits"), hits as u64);
    assert_eq!(env.stat("sh", "misses"), 1);
    // Folded now: the deltas are gone, the figures stay.
    assert!(s3_names(env.dir.path(), "cachier/counts/d/").is_empty());
    assert_eq!(env.stat("sh", "hits"), hits as u64);
    let ls = env.json(&["ls", "--json"]);
    assert_eq!(ls[0]["hits"].as_u64(), Some(hits as u64));
}

/// `counted(text)` run twice with `vars` instead of the test's key pair:
/// a miss, then a hit, with nothing on stderr.
fn works_with(env: &Env, vars: &[(&str, String)], text: &str) {
    for _ in 0..2 {
        let mut cmd = env.run_sh(&[], &counted(text));
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env("HOME", env.path("home"))
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            (
                out.status.code(),
                &out.stdout[..],
                String::from_utf8_lossy(&out.stderr).as_ref()
            ),
            (Some(0), text.as_bytes(), "")
        );
    }
}

#[test]
fn credentials_come_from_a_profile_or_its_credential_process() {
    let Some(env) = s3_env() else { return };
    let aws = env.path("home/.aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[ci]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = profile-secret\n",
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        "[profile proc]\nregion = us-east-1\ncredential_process = printf \
         '{\"Version\":1,\"AccessKeyId\":\"AKIAPROC\",\"SecretAccessKey\":\"proc-secret\"}'\n",
    )
    .unwrap();
    works_with(&env, &[("AWS_PROFILE", "ci".into())], "profile");
    works_with(&env, &[("AWS_PROFILE", "proc".into())], "process");
    assert_eq!(env.runs(), 2);
}

#[test]
fn web_identity_is_exchanged_at_sts() {
    let Some(env) = s3_env() else { return };
    std::fs::write(env.path("token"), "eyJhbGciOi.test.token").unwrap();
    let vars = [
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            env.path("token").display().to_string(),
        ),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci".into()),
        ("AWS_ENDPOINT_URL_STS", s3_url().unwrap()),
    ];
    works_with(&env, &vars, "oidc");
    assert_eq!(env.runs(), 1);
}

/// A metadata endpoint speaking IMDSv2 only (no token, 401), on loopback,
/// for as long as the returned child lives; and its URL.
fn metadata_server(env: &Env) -> (std::process::Child, String) {
    let script = r#"
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, body):
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_PUT(self):
        ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self.reply(200 if ok else 400, b"imds-token")
    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != "imds-token":
            return self.reply(401, b"")
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == base: return self.reply(200, b"ci-role\n")
        if self.path == base + "ci-role":
            return self.reply(200, json.dumps({"Code": "Success", "AccessKeyId": "ASIAIMDS",
                "SecretAccessKey": "imds-secret", "Token": "imds-session"}).encode())
        self.reply(404, b"")
s = http.server.HTTPServer(("127.0.0.1", 0), H)
s.timeout = 60
print(s.server_address[1], flush=True)
for _ in range(20): s.handle_request()
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(env.dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, format!("http://127.0.0.1:{}", line.trim()))
}

#[test]
fn instance_metadata_is_asked_with_a_session_token() {
    let Some(env) = s3_env() else { return };
    let (mut server, url) = metadata_server(&env);
    let vars = [
        ("AWS_EC2_METADATA_DISABLED", "false".to_string()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", url),
    ];
    works_with(&env, &vars, "imds");
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn missing_credentials_are_one_line_naming_every_source() {
    let Some(env) = s3_env() else { return };
    let port = crate::proxy::closed_port();
    let mut cmd = env.run_sh(&[], &counted("hi"));
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env("HOME", env.path("home"))
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        );
    let out = cmd.output().unwrap();
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for part in [
        "cachier: warning: no AWS credentials for S3 at s3://",
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        "profile `default` in ~/.aws/credentials and ~/.aws/config",
        "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)",
        &format!("instance metadata at http://127.0.0.1:{port}"),
    ] {
        assert!(stderr.contains(part), "{part} missing in {stderr}");
    }
}
