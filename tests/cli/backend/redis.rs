//! The redis suites' server: the one server in `CACHIER_TEST_REDIS_URL` or
//! the cluster in `CACHIER_TEST_REDIS_CLUSTER_URL` (both started by
//! `scripts/test`), shared by every test, each with its own key prefix named
//! after its temp dir; and the hooks that inspect or damage its entries.
use std::path::Path;
use std::time::Duration;

use super::require;

const SINGLE: &str = "CACHIER_TEST_REDIS_URL";
const CLUSTER: &str = "CACHIER_TEST_REDIS_CLUSTER_URL";

fn var(cluster: bool) -> &'static str {
    if cluster { CLUSTER } else { SINGLE }
}

/// The server's URL (a comma-separated node list for the cluster), if set.
pub fn redis_url(cluster: bool) -> Option<String> {
    std::env::var(var(cluster)).ok().filter(|u| !u.is_empty())
}

pub fn available(cluster: bool) -> bool {
    let what = if cluster { "redis cluster" } else { "redis" };
    require(what, redis_url(cluster).is_some(), var(cluster))
}

/// The key prefix private to the test in `dir`.
pub fn redis_prefix(dir: &Path) -> String {
    format!("t{}", dir.file_name().unwrap().to_string_lossy())
}

/// A connection to every node of the server or cluster (the test cluster
/// has masters only, so every node holds keys).
fn nodes(cluster: bool) -> Vec<redis::Connection> {
    let urls = redis_url(cluster).expect("the test Redis URL");
    urls.split(',')
        .map(|url| {
            redis::Client::open(url.trim())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
                .unwrap_or_else(|e| panic!("cannot reach the test Redis server {url}: {e}"))
        })
        .collect()
}

/// Every key matching `pattern`, with the connection to the node holding it.
fn each_key(cluster: bool, pattern: &str, mut f: impl FnMut(&mut redis::Connection, &str)) {
    for mut conn in nodes(cluster) {
        let names: Vec<String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for name in names {
            f(&mut conn, &name);
        }
    }
}

fn metas(dir: &Path) -> String {
    format!("{{{}:*}}:m", redis_prefix(dir))
}

pub fn set_up(_dir: &Path, _cluster: bool) {}

pub fn tear_down(dir: &Path, cluster: bool) {
    if redis_url(cluster).is_none() {
        return;
    }
    let prefix = redis_prefix(dir);
    for pattern in [format!("{{{prefix}:*"), format!("{{{prefix}}}*")] {
        each_key(cluster, &pattern, |conn, name| {
            let _: Result<i64, _> = redis::cmd("UNLINK").arg(name).query(conn);
        });
    }
}

pub fn env(dir: &Path, cluster: bool) -> Vec<(String, String)> {
    vec![
        (
            "CACHIER_REDIS_URL".to_string(),
            redis_url(cluster).expect("the test Redis URL"),
        ),
        ("CACHIER_REDIS_PREFIX".to_string(), redis_prefix(dir)),
    ]
}

pub fn age_entries(dir: &Path, cluster: bool, by: Duration) {
    each_key(cluster, &metas(dir), |conn, name| {
        let _: i64 = redis::cmd("HINCRBY")
            .arg(name)
            .arg("created")
            .arg(-(by.as_millis() as i64))
            .query(conn)
            .unwrap();
    });
}

pub fn damage_entries(dir: &Path, cluster: bool, truncate: bool) {
    let mut damaged = 0;
    each_key(cluster, &metas(dir), |conn, name| {
        let (generation, chunks): (String, u64) = redis::cmd("HMGET")
            .arg(name)
            .arg(&["gen", "chunks"])
            .query(conn)
            .unwrap();
        if chunks == 0 {
            return;
        }
        let base = name.strip_suffix(":m").unwrap();
        let chunk = |n: u64| format!("{base}:c:{generation}:{n}");
        if truncate {
            let gone: i64 = redis::cmd("DEL")
                .arg(chunk(chunks - 1))
                .query(conn)
                .unwrap();
            damaged += gone;
        } else {
            let mut data: Vec<u8> = redis::cmd("GET").arg(chunk(0)).query(conn).unwrap();
            data[0] ^= 0x55;
            let _: () = redis::cmd("SET")
                .arg(chunk(0))
                .arg(data)
                .arg("KEEPTTL")
                .query(conn)
                .unwrap();
            damaged += 1;
        }
    });
    assert!(damaged > 0, "no entry to damage");
}

pub fn count_entries(dir: &Path, cluster: bool) -> usize {
    let mut n = 0;
    each_key(cluster, &metas(dir), |_, _| n += 1);
    n
}

/// A single Redis server or a 3-master cluster, one key prefix per test.
pub struct Redis {
    pub cluster: bool,
}

impl super::TestBackend for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn available(&self) -> bool {
        available(self.cluster)
    }
    fn set_up(&self, dir: &Path) {
        set_up(dir, self.cluster)
    }
    fn tear_down(&self, dir: &Path) {
        tear_down(dir, self.cluster)
    }
    fn env(&self, dir: &Path) -> Vec<(String, String)> {
        env(dir, self.cluster)
    }
    fn age_entries(&self, dir: &Path, by: Duration) {
        age_entries(dir, self.cluster, by)
    }
    fn damage_entries(&self, dir: &Path, truncate: bool) {
        damage_entries(dir, self.cluster, truncate)
    }
    fn count_entries(&self, dir: &Path) -> usize {
        count_entries(dir, self.cluster)
    }
}
