//! `--read-only` on the stores of this machine: it creates nothing. A
//! missing SQLite database is an empty cache (not created, nor its
//! directory), a damaged one is left where it is, and the memory backend
//! uses a running daemon but never starts one.
use crate::backend::Backend;
use crate::harness::*;

/// A read-only `counted(text)` on `env`'s store: quiet, the exact output.
fn read_only_run(env: &Env, url: Option<&str>, text: &str) -> String {
    let mut cmd = env.run_sh(&["--read-only"], &counted(text));
    if let Some(url) = url {
        cmd.env("CACHIER_SQL_URL", url);
    }
    let out = cmd.output().unwrap();
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stdout)),
        (Some(0), text.into())
    );
    String::from_utf8(out.stderr).unwrap()
}

#[cfg(feature = "sqlite")]
#[test]
fn read_only_sqlite_creates_no_database() {
    let env = Env::new(Backend::Sqlite);
    let url = format!("sqlite://{}", env.path("sub/c.db").display());
    for runs in 1..=2 {
        assert_eq!(read_only_run(&env, Some(&url), "hi"), "");
        assert_eq!(env.runs(), runs);
    }
    assert!(!env.path("sub").exists(), "read-only made the directory");
    let out = env
        .cachier(&["--read-only", "stats", "--json"])
        .env("CACHIER_SQL_URL", &url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !env.path("sub").exists(),
        "read-only stats made the directory"
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn read_only_leaves_a_damaged_sqlite_database_in_place() {
    let env = Env::new(Backend::Sqlite);
    std::fs::create_dir(env.path("db")).unwrap();
    let junk = vec![b'x'; 8192];
    std::fs::write(env.path("db/c.db"), &junk).unwrap();
    let url = format!("sqlite://{}", env.path("db/c.db").display());
    let stderr = read_only_run(&env, Some(&url), "hi");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("cachier: warning: ") && stderr.contains("left as it is: read-only"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(env.path("db/c.db")).unwrap(), junk);
    let names: Vec<_> = std::fs::read_dir(env.path("db"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["c.db"]);
}

#[test]
fn read_only_memory_starts_no_daemon() {
    let env = Env::new(Backend::Memory);
    for runs in 1..=2 {
        assert_eq!(read_only_run(&env, None, "hi"), "");
        assert_eq!(env.runs(), runs);
    }
    let out = env.cachier(&["daemon", "status"]).output().unwrap();
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stdout)),
        (Some(3), "the memory daemon is not running\n".into())
    );
    // A daemon that runs is used: a writer's entry is served.
    env.run_sh(&[], &counted("hi")).output().unwrap();
    assert_eq!(read_only_run(&env, None, "hi"), "");
    assert_eq!(env.runs(), 3);
}
