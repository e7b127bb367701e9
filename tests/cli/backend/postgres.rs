//! The postgres suite's server: a fresh database per test on the server in
//! `CACHIER_TEST_PG_URL`, and the hooks that inspect or damage its entries.
use std::path::Path;
use std::time::Duration;

use super::pg_url;

/// A connection to `url`, for setting up and inspecting test databases.
pub fn pg_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server: {e}"))
}

/// The database private to the test in `dir`: named after the temp dir.
pub fn pg_db(dir: &Path) -> String {
    let name = dir.file_name().unwrap().to_string_lossy();
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("cachier_t_{hex}")
}

/// `url` with its database replaced by `db`.
fn pg_url_for(url: &str, db: &str) -> String {
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

pub fn pg_test_url(dir: &Path) -> String {
    pg_url_for(&pg_url().expect("CACHIER_TEST_PG_URL"), &pg_db(dir))
}

pub fn pg_test_client(dir: &Path) -> postgres::Client {
    pg_client(&pg_test_url(dir))
}

pub fn set_up(dir: &Path) {
    let mut admin = pg_client(&pg_url().expect("CACHIER_TEST_PG_URL"));
    admin
        .batch_execute(&format!("CREATE DATABASE \"{}\"", pg_db(dir)))
        .unwrap();
}

pub fn tear_down(dir: &Path) {
    if let Some(url) = pg_url()
        && let Ok(mut admin) = postgres::Client::connect(&url, postgres::NoTls)
    {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", pg_db(dir));
        let _ = admin.batch_execute(&sql);
    }
}

pub fn age_entries(dir: &Path, by: Duration) {
    pg_test_client(dir)
        .execute(
            "UPDATE cachier_entries SET created_ms = created_ms - $1",
            &[&(by.as_millis() as i64)],
        )
        .unwrap();
}

pub fn damage_entries(dir: &Path, truncate: bool) {
    let sql = if truncate {
        "DELETE FROM cachier_chunks c WHERE seq = \
         (SELECT max(seq) FROM cachier_chunks d WHERE d.key = c.key)"
    } else {
        "UPDATE cachier_chunks SET data = set_byte(data, 0, get_byte(data, 0) # 85) \
         WHERE seq = 0 AND length(data) > 0"
    };
    assert!(pg_test_client(dir).execute(sql, &[]).unwrap() > 0);
}

pub fn count_entries(dir: &Path) -> usize {
    let mut client = pg_test_client(dir);
    let row = client
        .query_one("SELECT to_regclass('cachier_entries') IS NOT NULL", &[])
        .unwrap();
    if !row.get::<_, bool>(0) {
        return 0;
    }
    let row = client
        .query_one("SELECT count(*) FROM cachier_entries", &[])
        .unwrap();
    row.get::<_, i64>(0) as usize
}

/// The `sql` store on PostgreSQL, one database per test.
pub struct Postgres;

impl super::TestBackend for Postgres {
    fn name(&self) -> &'static str {
        "sql"
    }
    fn available(&self) -> bool {
        super::require("postgres", super::pg_url().is_some(), "CACHIER_TEST_PG_URL")
    }
    fn set_up(&self, dir: &Path) {
        set_up(dir)
    }
    fn tear_down(&self, dir: &Path) {
        tear_down(dir)
    }
    fn env(&self, dir: &Path) -> Vec<(String, String)> {
        vec![("CACHIER_SQL_URL".to_string(), pg_test_url(dir))]
    }
    fn age_entries(&self, dir: &Path, by: Duration) {
        age_entries(dir, by)
    }
    fn damage_entries(&self, dir: &Path, truncate: bool) {
        damage_entries(dir, truncate)
    }
    fn count_entries(&self, dir: &Path) -> usize {
        count_entries(dir)
    }
}
