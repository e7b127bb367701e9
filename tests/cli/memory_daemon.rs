//! The memory daemon's life: started once by simultaneous first uses,
//! status, stop, idle exit, its private directory, and no daemon left
//! behind by a test.
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use assert_cmd::assert::OutputAssertExt;

use crate::backend::Backend;
use crate::backend::memory::{alive, daemon, daemon_dir, daemon_pid, status};
use crate::harness::*;

fn env() -> Env {
    Env::new(Backend::Memory)
}

/// The `cachier daemon serve` processes whose runtime dir is the test's.
fn daemons_of(dir: &Path) -> usize {
    let want = format!("XDG_RUNTIME_DIR={}", dir.join("run").display());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let has = |hay: &[u8], needle: &[u8]| hay.split(|b| *b == 0).any(|p| p == needle);
            has(&cmdline, b"serve") && has(&environ, want.as_bytes())
        })
        .count()
}

#[test]
fn no_daemon_outlives_its_env() {
    let env = env();
    env.run_sh(&[], &counted("x")).assert().code(0).stdout("x");
    let pid = daemon_pid(env.dir.path()).expect("the daemon wrote its pid");
    assert!(alive(pid));
    drop(env);
    assert!(!alive(pid), "the daemon outlived its test");
}

#[test]
fn simultaneous_first_uses_start_exactly_one_daemon() {
    let env = env();
    let callers: Vec<_> = (0..8)
        .map(|_| {
            env.run_sh(&[], &counted("same"))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for caller in callers {
        let out = caller.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(out.stdout, b"same");
    }
    assert_eq!(env.runs(), 1, "single-flight inside the daemon");
    assert_eq!(daemons_of(env.dir.path()), 1);
}

#[test]
fn status_reports_pid_uptime_entries_bytes_and_hits() {
    let env = env();
    let dir = env.dir.path();
    daemon(dir, &["status"])
        .assert()
        .code(3)
        .stdout("the memory daemon is not running\n");
    assert_eq!(status(dir), None);
    for _ in 0..3 {
        env.run_sh(&[], &counted("abc")).assert().stdout("abc");
    }
    let s = status(dir).unwrap();
    assert_eq!(s["running"], true);
    assert_eq!(s["pid"].as_i64().unwrap() as i32, daemon_pid(dir).unwrap());
    assert!(s["uptime_ms"].is_u64());
    assert_eq!(s["entries"], 1);
    assert!(s["bytes"].as_u64().unwrap() > 3);
    assert_eq!(s["hits"], 2);
    assert_eq!(s["max_memory"], 512 << 20);
    assert_eq!(s["idle_timeout_ms"], 600_000);
    let text = String::from_utf8(daemon(dir, &["status"]).output().unwrap().stdout).unwrap();
    for field in ["pid ", "uptime ", "entries ", "bytes ", "hits "] {
        assert!(text.contains(field), "{field} missing from {text}");
    }
}

#[test]
fn stop_ends_the_daemon_and_removes_its_socket() {
    let env = env();
    let dir = env.dir.path();
    daemon(dir, &["start"])
        .assert()
        .code(0)
        .stdout(predicates::str::starts_with(
            "started the memory daemon (pid ",
        ));
    daemon(dir, &["start"])
        .assert()
        .code(0)
        .stdout(predicates::str::starts_with(
            "the memory daemon already runs",
        ));
    let pid = daemon_pid(dir).unwrap();
    daemon(dir, &["stop"])
        .assert()
        .code(0)
        .stdout(format!("stopped the memory daemon (pid {pid})\n"));
    assert!(!alive(pid));
    assert!(!daemon_dir(dir).join("memory.sock").exists());
    assert!(!daemon_dir(dir).join("memory.pid").exists());
    daemon(dir, &["stop"])
        .assert()
        .code(0)
        .stdout("the memory daemon is not running\n");
}

#[test]
fn an_idle_daemon_exits_by_itself() {
    let env = env();
    let dir = env.dir.path();
    daemon(dir, &["start", "--idle-timeout", "300ms"])
        .assert()
        .code(0);
    let pid = daemon_pid(dir).unwrap();
    await_until("the idle daemon exits", || !alive(pid));
    assert!(!daemon_dir(dir).join("memory.sock").exists());
}

#[test]
fn the_socket_dir_is_private() {
    let env = env();
    let dir = daemon_dir(env.dir.path());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.run_sh(&[], &counted("x")).assert().code(0).stdout("x");
    let stat = std::fs::metadata(&dir).unwrap();
    assert_eq!(stat.mode() & 0o777, 0o700, "tightened to 0700");
    assert_eq!(stat.uid(), rustix::process::getuid().as_raw());
}

#[test]
fn a_socket_dir_of_another_user_is_refused() {
    if !rustix::process::getuid().is_root() {
        return; // only root can make a directory of another user
    }
    let env = env();
    let dir = daemon_dir(env.dir.path());
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let out = env.run_sh(&[], &counted("x")).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"x");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    assert_eq!(daemon_pid(env.dir.path()), None);
}

/// A hello as the daemon expects it: `{"Hello": {"protocol": 1, "version": "0.1.0"}}`
/// in CBOR, framed (the protocol's version is irrelevant: any answer counts).
fn hello_frame() -> Vec<u8> {
    let mut cbor = vec![0xa1, 0x65];
    cbor.extend_from_slice(b"Hello");
    cbor.extend_from_slice(&[0xa2, 0x68]);
    cbor.extend_from_slice(b"protocol");
    cbor.extend_from_slice(&[0x01, 0x67]);
    cbor.extend_from_slice(b"version");
    cbor.push(0x65);
    cbor.extend_from_slice(b"0.1.0");
    let mut frame = (cbor.len() as u32).to_be_bytes().to_vec();
    frame.extend(cbor);
    frame
}

/// What the daemon answers a hello on `socket`, connecting as `uid`.
fn answer_as(socket: &Path, uid: Option<u32>) -> Vec<u8> {
    use std::io::{Read, Write};
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        if let Some(uid) = uid {
            // This thread only (a raw setresuid), not the test process.
            let uid = rustix::process::Uid::from_raw(uid);
            rustix::thread::set_thread_res_uid(uid, uid, uid).unwrap();
        }
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        // Refused at once, the write itself may fail (EPIPE).
        let _ = s.write_all(&hello_frame());
        // The first bytes of an answer, or none when the daemon hangs up.
        let mut answer = [0u8; 64];
        let n = s.read(&mut answer).unwrap_or(0);
        answer[..n].to_vec()
    })
    .join()
    .unwrap()
}

#[test]
fn another_users_connection_is_refused() {
    if !rustix::process::getuid().is_root() {
        return; // only root can connect as another user
    }
    let env = env();
    let dir = env.dir.path();
    daemon(dir, &["start"]).assert().code(0);
    let socket = daemon_dir(dir).join("memory.sock");
    // Open the way to the socket, so that only the daemon's check stops them.
    for (path, mode) in [
        (dir.to_path_buf(), 0o755),
        (dir.join("run"), 0o755),
        (daemon_dir(dir), 0o755),
        (socket.clone(), 0o777),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    assert!(!answer_as(&socket, None).is_empty(), "we get an answer");
    assert!(
        answer_as(&socket, Some(65534)).is_empty(),
        "nobody gets none"
    );
    assert_eq!(status(dir).unwrap()["running"], true);
}
