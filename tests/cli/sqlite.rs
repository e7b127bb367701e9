//! What only the SQLite side of the `sql` store does: where its database
//! lives, its file modes, its schema version and a locked database.
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, sqlite};
use crate::harness::*;

/// A script with output on both streams and its own exit code.
fn both_streams() -> String {
    format!("{}; echo err >&2; exit 5", counted("out"))
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn sql_url_picks_the_database_and_creates_it_private() {
    let env = Env::new(Backend::Sqlite);
    let db = env.path("deep/er/mine.db");
    let url = format!("sqlite://{}", db.display());
    for _ in 0..2 {
        let mut cmd = env.cachier(&["--sql-url", &url, "run", "--cache-failures", "--"]);
        cmd.args(["sh", "-c", &both_streams()])
            .env("COUNT", env.path("count"));
        cmd.assert().code(5).stdout("out").stderr("err\n");
    }
    assert_eq!(env.runs(), 1, "the second run was a hit");
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&env.path("deep/er")), 0o700);
    assert_eq!(mode(&env.path("deep")), 0o700);
    assert!(
        !env.path("cache/cachier.db").exists(),
        "the default db is untouched"
    );
    assert_eq!(
        env.stdout(&["--sql-url", &url, "path"]),
        format!("{}\n", db.display())
    );
}

#[test]
fn the_default_database_is_private_and_the_file_backend_never_opens_it() {
    let env = Env::file();
    env.run_sh(&[], &counted("x")).assert().code(0);
    assert!(!env.path("cache/cachier.db").exists());
    let env = Env::new(Backend::Sqlite);
    env.run_sh(&[], &counted("x")).assert().code(0).stdout("x");
    assert_eq!(mode(&env.path("cache/cachier.db")), 0o600);
    assert_eq!(mode(&env.path("cache")), 0o700);
}

#[test]
fn a_newer_schema_is_one_clear_warning_and_the_command_still_runs() {
    let env = Env::new(Backend::Sqlite);
    env.run_sh(&["--cache-failures"], &both_streams())
        .assert()
        .code(5);
    // As a later cachier would: in the row and in the header.
    sqlite(env.dir.path())
        .execute_batch("PRAGMA user_version = 99; UPDATE schema_version SET version = 99")
        .unwrap();
    for runs in [2, 3] {
        let out = env
            .run_sh(&["--cache-failures"], &both_streams())
            .assert()
            .code(5)
            .stdout("out")
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let (ours, theirs): (Vec<&str>, Vec<&str>) =
            stderr.lines().partition(|l| l.starts_with("cachier:"));
        assert_eq!(theirs, ["err"], "{stderr}");
        assert_eq!(ours.len(), 1, "one warning: {stderr}");
        assert!(
            ours[0].starts_with("cachier: warning: the SQLite cache ")
                && ours[0].contains("schema version 99, newer than this cachier knows"),
            "{stderr}"
        );
        assert_eq!(env.runs(), runs, "the command ran uncached");
    }
    env.run_sh(&["--strict"], &both_streams())
        .assert()
        .code(125)
        .stdout("");
}

#[test]
fn a_locked_database_costs_one_timeout_and_one_warning() {
    let env = Env::new(Backend::Sqlite);
    env.run_sh(&[], &counted("first")).assert().code(0);
    let db = sqlite(env.dir.path());
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let out = env
        .run_sh(&[], &counted("second"))
        .assert()
        .code(0)
        .stdout("second")
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("locked by another process"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "waited more than once: {:?}",
        started.elapsed()
    );
    db.execute_batch("COMMIT").unwrap();
    env.run_sh(&[], &counted("second"))
        .assert()
        .code(0)
        .stdout("second")
        .stderr("");
    assert_eq!(
        env.runs(),
        3,
        "the locked run stored nothing; the next one did"
    );
}

#[test]
fn background_work_uses_the_database_the_flag_chose() {
    let env = Env::new(Backend::Sqlite);
    let db = env.path("other.db");
    let url = format!("sqlite://{}", db.display());
    let mut cmd = env.cachier(&["--sql-url", &url, "run", "--", "sh", "-c"]);
    cmd.arg(counted("big"))
        .env("COUNT", env.path("count"))
        .env("CACHIER_MAX_SIZE", "1");
    cmd.assert().code(0).stdout("big");
    let count = || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM entries", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    await_until("the background gc empties that database", || count() == 0);
    assert!(!env.path("cache/cachier.db").exists());
}

#[test]
fn big_outputs_go_in_chunks_of_at_most_one_mib() {
    let env = Env::new(Backend::Sqlite);
    // 17.5 MiB over both streams: more chunks than one write batch holds.
    let blob: Vec<u8> = (0..=255u8).cycle().take(35 << 19).collect();
    std::fs::write(env.path("blob"), &blob).unwrap();
    let script = "echo $$ >> \"$COUNT\"; cat blob; head -c 1000 blob >&2";
    for _ in 0..2 {
        let out = env.run_sh(&[], script).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout == blob, "stdout differs");
        assert!(out.stderr == blob[..1000], "stderr differs");
    }
    assert_eq!(env.runs(), 1);
    let (chunks, largest, total): (i64, i64, i64) = sqlite(env.dir.path())
        .query_row(
            "SELECT count(*), max(length(data)), sum(length(data)) FROM chunks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((largest, total), (1 << 20, blob.len() as i64 + 1000));
    // Full chunks over both streams: stderr's bytes share stdout's last one.
    assert_eq!(chunks, 18);
}

#[test]
fn gc_sweeps_the_chunks_of_a_write_killed_long_ago() {
    let env = Env::new(Backend::Sqlite);
    env.run_sh(&[], &counted("kept")).assert().code(0);
    let db = sqlite(env.dir.path());
    db.execute_batch(
        "INSERT INTO pending (id, started_ms) VALUES (1000, 0), (1001, 9e15);
         INSERT INTO chunks (entry, seq, data) VALUES (1000, 0, x'00'), (1001, 0, x'01');",
    )
    .unwrap();
    env.cachier(&["gc"]).assert().code(0);
    let left: Vec<i64> = db
        .prepare("SELECT entry FROM chunks WHERE entry >= 1000")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, [1001], "a write still in progress keeps its chunks");
    env.run_sh(&[], &counted("kept")).assert().stdout("kept");
    assert_eq!(env.runs(), 1);
}

#[test]
fn many_first_users_of_a_new_database_create_it_without_a_warning() {
    let env = Env::new(Backend::Sqlite);
    // Sixteen processes race to create the schema and switch to WAL.
    let callers: Vec<_> = (0..16)
        .map(|i| {
            env.run_sh(&["--name", &format!("n{i}")], &counted("x"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in callers {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            (
                out.status.code(),
                &out.stdout[..],
                String::from_utf8_lossy(&out.stderr)
            ),
            (Some(0), &b"x"[..], "".into())
        );
    }
    assert_eq!(env.count_entries(), 16);
}

/// The database file itself damaged, three ways: garbage over the whole
/// file, over its header, and over one page deep inside (header intact).
fn damage_database(db: &std::path::Path, how: &str) {
    let mut bytes = std::fs::read(db).unwrap();
    match how {
        "garbage" => bytes = b"this is not a database at all\n".repeat(200),
        "header" => bytes[..100].fill(0xA5),
        "page" => {
            // Every page but the first (the schema): the tables' b-trees.
            let page = 4096;
            assert!(bytes.len() > 2 * page, "a database of several pages");
            for b in &mut bytes[page..] {
                *b ^= 0x5A;
            }
        }
        _ => unreachable!(),
    }
    std::fs::write(db, bytes).unwrap();
    // The WAL holds recent pages: drop it, as a damaged disk would.
    let _ = std::fs::remove_file(db.with_extension("db-wal"));
    let _ = std::fs::remove_file(db.with_extension("db-shm"));
}

fn set_aside(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.path("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("cachier.db.corrupt-") && !n.ends_with("-wal") && !n.ends_with("-shm")
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_damaged_database_is_moved_aside_and_a_new_one_started() {
    for how in ["garbage", "header", "page"] {
        let env = Env::new(Backend::Sqlite);
        // Enough entries that the tables span several pages.
        for i in 0..40 {
            env.run_sh(&["--key", &i.to_string()], &counted(&"x".repeat(300)))
                .assert()
                .code(0);
        }
        let db = env.path("cache/cachier.db");
        // Fold the WAL into the file, so the damage hits the tables.
        sqlite(env.dir.path())
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        damage_database(&db, how);
        let before = env.runs();
        // The first run after the damage: the command's bytes and code, one
        // warning naming where the old file went.
        let out = env
            .run_sh(&["--cache-failures"], &both_streams())
            .assert()
            .code(5)
            .stdout("out")
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("cachier:"))
            .collect();
        assert_eq!(ours.len(), 1, "{how}: one warning: {stderr}");
        assert!(
            ours[0].contains("damaged") && ours[0].contains("cachier.db.corrupt-"),
            "{how}: {stderr}"
        );
        assert_eq!(set_aside(&env).len(), 1, "{how}: kept for inspection");
        // From then on the cache works again: a miss stores, the next run hits.
        for _ in 0..2 {
            env.run_sh(&["--cache-failures"], &both_streams())
                .assert()
                .code(5)
                .stdout("out")
                .stderr("err\n");
        }
        assert!(env.runs() <= before + 2, "{how}: the cache is used again");
        assert_eq!(mode(&db), 0o600, "{how}: the new database is private");
        assert_eq!(set_aside(&env).len(), 1, "{how}: moved aside once");
    }
}

#[test]
fn management_commands_work_on_a_damaged_database() {
    for cmd in [&["clear"][..], &["stats"], &["gc"], &["ls"]] {
        let env = Env::new(Backend::Sqlite);
        env.run_sh(&[], &counted("x")).assert().code(0);
        sqlite(env.dir.path())
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        damage_database(&env.path("cache/cachier.db"), "garbage");
        let out = env.cachier(cmd).assert().code(0).get_output().clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("moved it to"), "{cmd:?}: {stderr}");
        assert_eq!(set_aside(&env).len(), 1, "{cmd:?}");
        env.run_sh(&[], &counted("x")).assert().code(0).stdout("x");
        env.run_sh(&[], &counted("x")).assert().code(0).stdout("x");
        assert_eq!(env.runs(), 2, "{cmd:?}: a fresh cache, used again");
    }
}

/// A hit is counted in the journal, and reads the database without
/// changing a byte of it: a hit that wrote grew the WAL, which every later
/// process re-reads when it opens the database.
#[test]
fn a_hit_is_counted_without_writing_to_the_database() {
    let env = Env::new(Backend::Sqlite);
    let script = counted("out\n");
    env.run_sh(&[], &script).assert().code(0).stdout("out\n");
    let db = env.path("cache/cachier.db");
    let files = || {
        ["", "-wal"].map(|suffix| {
            let mut path = db.clone().into_os_string();
            path.push(suffix);
            std::fs::read(path).unwrap_or_default()
        })
    };
    let before = files();
    for _ in 0..3 {
        env.run_sh(&[], &script)
            .assert()
            .code(0)
            .stdout("out\n")
            .stderr("");
    }
    assert!(files() == before, "a hit changed the database or its WAL");
    assert_eq!(env.runs(), 1);
    assert_eq!(
        (env.stat("total", "hits"), env.stat("total", "misses")),
        (3, 1)
    );
    assert_eq!(env.json(&["ls", "--json"])[0]["hits"], 3);
}

/// A hit only reads: the database, its WAL and SQLite's shared index
/// (`-shm`, which each run's first connection used to rebuild: a truncate
/// and eight page writes per hit) keep their contents, to the nanosecond
/// of their modification times.
#[test]
fn a_hit_changes_none_of_the_database_files() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new(Backend::Sqlite);
    let db = env.path("cache/cachier.db");
    let changed = || -> Vec<(i64, i64, u64)> {
        ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| {
                let mut path = db.clone().into_os_string();
                path.push(suffix);
                let m = std::fs::metadata(&path).unwrap();
                (m.mtime(), m.mtime_nsec(), m.size())
            })
            .collect()
    };
    env.run_sh(&[], &counted("x")).assert().code(0).stdout("x");
    env.run_sh(&[], &counted("x")).assert().code(0).stdout("x");
    let before = changed();
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..3 {
        env.run_sh(&[], &counted("x"))
            .assert()
            .code(0)
            .stdout("x")
            .stderr("");
    }
    assert_eq!(changed(), before);
    assert_eq!(env.runs(), 1);
    assert_eq!(env.stat("sh", "hits"), 4);
}
