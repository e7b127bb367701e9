//! Pooled server connections (`store/pool`): hits on PostgreSQL, Redis and
//! MongoDB go through the daemon's open connection, counted by a proxy in
//! front of the real server; a connection serves only the credentials it
//! was opened with; a killed or broken daemon means a direct connection
//! with the same results; `CACHIER_POOL=0` starts no daemon.
use std::os::unix::net::UnixListener;
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, memory};
use crate::harness::*;
use crate::proxy::in_front_of;

/// One run of the counted `hi` script: exit 0, `hi` and nothing else.
fn says_hi(env: &Env) {
    env.run_sh(&[], &counted("hi"))
        .assert()
        .code(0)
        .stdout("hi")
        .stderr("");
}

/// The backend's URL variable and value, as the test environment sets it.
fn url_var(env: &Env) -> (String, String) {
    env.backend
        .env(env.dir.path())
        .into_iter()
        .find(|(k, _)| k.ends_with("_URL"))
        .expect("a server backend has a URL")
}

/// Hits on `backend` straight to the server open a connection each;
/// pooled ones reuse the daemon's: `per_store` connections for each of
/// its worker threads (at most four stay parked), however many hits.
fn hits_open_no_connection(backend: Backend, per_store: usize) {
    let Some(env) = Env::try_new(backend) else {
        return;
    };
    let (var, url) = url_var(&env);
    let (proxy, via) = in_front_of(&url);
    let run = |pool: &str| {
        env.run_sh(&[], &counted("pooled"))
            .env(&var, &via)
            .env("CACHIER_POOL", pool)
            .assert()
            .code(0)
            .stdout("pooled")
            .stderr("");
    };
    run("0");
    assert_eq!(env.runs(), 1);
    let before = proxy.connections();
    for _ in 0..3 {
        run("0");
    }
    assert!(proxy.connections() >= before + 3, "direct hits connect");
    let before = proxy.connections();
    for _ in 0..8 {
        run("1");
    }
    let opened = proxy.connections() - before;
    assert!(
        opened <= 4 * per_store,
        "8 pooled hits opened {opened} connections"
    );
    assert_eq!(env.runs(), 1);
    // Every hit was counted, the pooled ones too.
    assert_eq!(env.stat("sh", "hits"), 11);
}

#[test]
fn postgres_hits_reuse_the_daemons_connection() {
    hits_open_no_connection(Backend::PooledPostgres, 1);
}

#[cfg(feature = "redis")]
#[test]
fn redis_hits_reuse_the_daemons_connection() {
    hits_open_no_connection(Backend::PooledRedis, 1);
}

#[cfg(feature = "mongo")]
#[test]
fn mongo_hits_reuse_the_daemons_connection() {
    hits_open_no_connection(Backend::PooledMongo, 2);
}

/// `url` with the password of its user replaced.
fn with_password(url: &str, password: &str) -> String {
    let at = url.find('@').expect("a URL with credentials");
    let scheme = url.find("://").expect("a URL") + 3;
    let colon = scheme + url[scheme..at].find(':').expect("a password");
    format!("{}:{password}{}", &url[..colon], &url[at..])
}

/// The password in `url`.
fn password_of(url: &str) -> String {
    let at = url.find('@').expect("a URL with credentials");
    let scheme = url.find("://").expect("a URL") + 3;
    let colon = scheme + url[scheme..at].find(':').expect("a password");
    url[colon + 1..at].to_string()
}

#[test]
fn a_pooled_connection_serves_only_its_own_credentials() {
    let Some(env) = Env::try_new(Backend::PooledPostgres) else {
        return;
    };
    let (var, url) = url_var(&env);
    for _ in 0..2 {
        env.run_sh(&[], &counted("secret stuff"))
            .assert()
            .code(0)
            .stdout("secret stuff")
            .stderr("");
    }
    assert_eq!(env.runs(), 1);
    assert!(memory::daemon_pid(env.dir.path()).is_some(), "no daemon");
    // `daemon status` names the server it keeps a connection to, never
    // the password.
    let password = password_of(&url);
    let out = env
        .cachier(&["daemon", "status", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pooled = status["pooled"].as_array().unwrap();
    assert_eq!(pooled.len(), 1, "{text}");
    let server = pooled[0]["server"].as_str().unwrap();
    assert!(server.starts_with("postgresql://127.0.0.1:"), "{text}");
    assert!(pooled[0]["connections"].as_u64().unwrap() >= 1, "{text}");
    let out = env.cachier(&["daemon", "status"]).output().unwrap();
    let human = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        human.contains(&format!("pooled       {server} (")),
        "{human}"
    );
    for shown in [&text, &human] {
        assert!(!shown.contains(&format!(":{password}@")), "{shown}");
    }
    // The daemon holds an authenticated connection to this database; a
    // caller with another password gets nothing from it.
    let wrong = "not-the-password-4417";
    let out = env
        .run_sh(&[], &counted("secret stuff"))
        .env(&var, with_password(&url, wrong))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "secret stuff");
    assert_eq!(env.runs(), 2, "served through another user's connection");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PostgreSQL"), "no warning: {stderr}");
    assert!(!stderr.contains(wrong), "the password leaked: {stderr}");
}

#[cfg(feature = "redis")]
#[test]
fn a_killed_daemon_is_replaced_and_a_broken_one_bypassed() {
    let Some(env) = Env::try_new(Backend::PooledRedis) else {
        return;
    };
    let hit = || says_hi(&env);
    hit();
    hit();
    // Counted (the daemon writes counts in bursts: one killed outright
    // loses its last 100 ms of them).
    assert_eq!(env.stat("sh", "hits"), 1);
    let dir = env.dir.path();
    let first = memory::daemon_pid(dir).expect("a daemon");
    memory::kill_and_reap(first);
    hit();
    assert_eq!(env.stat("sh", "hits"), 2);
    let second = memory::daemon_pid(dir).expect("a new daemon");
    assert_ne!(first, second);
    // A daemon that accepts and then says nothing: the run still gets its
    // hit, straight from Redis, once the 2 s hello deadline passes.
    memory::kill_and_reap(second);
    let socket = memory::daemon_dir(dir).join("memory.sock");
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let (out, took) = output_within(env.run_sh(&[], &counted("hi")), Duration::from_secs(30));
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
        ),
        (Some(0), "hi".to_string())
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(env.runs(), 1);
    assert_eq!(env.stat("sh", "hits"), 3);
}

#[cfg(feature = "redis")]
#[test]
fn pool_off_starts_no_daemon_and_on_is_the_default() {
    let Some(env) = Env::try_new(Backend::PooledRedis) else {
        return;
    };
    let dir = env.dir.path();
    for _ in 0..2 {
        env.run_sh(&[], &counted("hi"))
            .env("CACHIER_POOL", "0")
            .assert()
            .code(0)
            .stdout("hi");
    }
    assert_eq!(memory::daemon_pid(dir), None);
    env.run_sh(&[], &counted("hi"))
        .env_remove("CACHIER_POOL")
        .assert()
        .code(0)
        .stdout("hi");
    assert!(memory::daemon_pid(dir).is_some(), "no daemon by default");
    assert_eq!(env.runs(), 1);
}

/// A miss through the daemon keeps the daemon's connection: misses on a
/// pooled store open no more connections than the same misses made
/// straight to the server, but for the daemon's own few (before, each miss
/// dropped the daemon's connection and the next lookup made a new one).
/// A direct miss's count can vary by one (a claim's heartbeat thread makes
/// its own connection, which a loaded machine may not get to before the
/// run ends), so the bound takes the most one direct miss opened.
fn misses_keep_the_daemons_connection(backend: Backend, per_store: usize) {
    let Some(env) = Env::try_new(backend) else {
        return;
    };
    let (var, url) = url_var(&env);
    let (proxy, via) = in_front_of(&url);
    // The connections each miss opened.
    let misses = |pool: &str, from: usize, n: usize| -> Vec<usize> {
        (from..from + n)
            .map(|i| {
                let before = proxy.connections();
                env.run_sh(&[], &format!("printf {i}"))
                    .env(&var, &via)
                    .env("CACHIER_POOL", pool)
                    .assert()
                    .code(0)
                    .stdout(i.to_string());
                proxy.connections() - before
            })
            .collect()
    };
    let direct = misses("0", 0, 4);
    let each = direct.iter().copied().max().unwrap_or(0);
    assert!(each > 0, "direct misses opened no connection: {direct:?}");
    let pooled: usize = misses("1", 100, 12).iter().sum();
    assert!(
        pooled <= 12 * each + 4 * per_store,
        "12 pooled misses opened {pooled} connections (straight to the server, at most {each} each: {direct:?})"
    );
}

#[test]
fn postgres_misses_keep_the_daemons_connection() {
    misses_keep_the_daemons_connection(Backend::PooledPostgres, 1);
}

#[cfg(feature = "redis")]
#[test]
fn redis_misses_keep_the_daemons_connection() {
    misses_keep_the_daemons_connection(Backend::PooledRedis, 1);
}

#[cfg(feature = "mongo")]
#[test]
fn mongo_misses_keep_the_daemons_connection() {
    misses_keep_the_daemons_connection(Backend::PooledMongo, 2);
}

/// Hits' counts go to the daemon, which writes them in bursts: a reader of
/// counts (`stats`, `ls`) first has them written, and a daemon told to stop
/// writes them before it goes. Read here past the daemon, from the server
/// itself, on the entry and on its namespace.
fn counts_are_written_before_the_daemon_stops(backend: Backend) {
    let Some(env) = Env::try_new(backend) else {
        return;
    };
    let run = || says_hi(&env);
    for _ in 0..4 {
        run();
    }
    env.cachier(&["daemon", "stop"]).assert().code(0);
    let direct = |args: &[&str]| -> serde_json::Value {
        let out = env.cachier(args).env("CACHIER_POOL", "0").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let stats = direct(&["stats", "--json"]);
    assert_eq!(stats["namespaces"]["sh"]["hits"], 3, "{stats}");
    let ls = direct(&["ls", "--json"]);
    assert_eq!(ls[0]["hits"], 3, "{ls}");
    assert_eq!(env.runs(), 1);
    // And a reader through the pool sees the next hits at once.
    run();
    run();
    assert_eq!(env.stat("sh", "hits"), 5);
}

#[test]
fn postgres_counts_are_written_before_the_daemon_stops() {
    counts_are_written_before_the_daemon_stops(Backend::PooledPostgres);
}

#[cfg(feature = "redis")]
#[test]
fn redis_counts_are_written_before_the_daemon_stops() {
    counts_are_written_before_the_daemon_stops(Backend::PooledRedis);
}

#[cfg(feature = "mongo")]
#[test]
fn mongo_counts_are_written_before_the_daemon_stops() {
    counts_are_written_before_the_daemon_stops(Backend::PooledMongo);
}

/// A burst of concurrent hits makes the daemon start worker threads, and
/// the spare ones end after it with their pooled PostgreSQL connections:
/// closing those must not bring the daemon down (it did: tokio panicked in
/// the ending thread's teardown, and a release build aborts on a panic).
#[test]
fn worker_threads_ending_after_a_burst_keep_the_daemon() {
    let Some(env) = Env::try_new(Backend::PooledPostgres) else {
        return;
    };
    let hit = || says_hi(&env);
    hit();
    let daemon = memory::daemon_pid(env.dir.path()).expect("a daemon");
    for _ in 0..3 {
        let burst: Vec<_> = (0..12)
            .map(|_| {
                env.run_sh(&[], &counted("hi"))
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in burst {
            let out = child.wait_with_output().unwrap();
            assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
        }
    }
    hit();
    assert!(memory::alive(daemon), "the daemon died");
    assert_eq!(memory::daemon_pid(env.dir.path()), Some(daemon));
    assert_eq!(env.runs(), 1);
    assert_eq!(env.stat("sh", "hits"), 37);
}
