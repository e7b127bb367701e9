//! The `sql` store: SQLite (embedded, the default) or PostgreSQL (by URL).
//! Each database is a cargo feature and its client is created on first use.
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::path::{Path, PathBuf};

use super::Store;
use super::param::{Common, Kind, Param, Section};
use super::registry::Def;
use super::unavailable;

pub static DEF: Def = Def {
    name: "sql",
    aliases: &[],
    reach: 2,
    params: &[Param {
        key: "sql_url",
        var: "CACHIER_SQL_URL",
        flag: Some("sql-url"),
        tier_key: Some("url"),
        kind: Kind::Text,
        value_name: "URL",
        help: "The sql backend's database: sqlite:///path.db or postgresql://user:pass@host:port/db \
               [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]",
    }],
    check: |section, ctx| SqlConfig::from_section(section, &ctx.cache_dir).map(drop),
    open,
    // PostgreSQL saves a connection; SQLite its open, schema read and
    // plans (a daemon works from `/`, so only an absolute path: the
    // default one under the cache dir, which the target makes absolute,
    // or `sqlite:///path`).
    pooled: |section| {
        section
            .text("sql_url")
            .is_none_or(|(url, _)| match SqlConfig::parse(url) {
                Ok(SqlConfig::Postgres(_)) => true,
                Ok(SqlConfig::Sqlite(path)) => path.is_absolute(),
                Err(_) => false,
            })
    },
};

/// Where the sql backend keeps its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlConfig {
    Sqlite(PathBuf),
    Postgres(String),
}

impl SqlConfig {
    /// The database `sql` uses: the URL's, or SQLite beside the file store.
    pub fn from_section(section: &Section, cache_dir: &Path) -> Result<SqlConfig, String> {
        let Some((url, from)) = section.text("sql_url") else {
            return Ok(SqlConfig::Sqlite(cache_dir.join("cachier.db")));
        };
        SqlConfig::parse(url).map_err(|e| format!("{from}: {e}"))
    }

    fn parse(url: &str) -> Result<SqlConfig, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a path, e.g. sqlite:///home/me/cache.db".into());
            }
            return Ok(SqlConfig::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgresql://") || url.starts_with("postgres://") {
            return Ok(SqlConfig::Postgres(url.to_string()));
        }
        Err("the sql URL must start with sqlite:// or postgresql://".into())
    }
}

/// An entry's metadata from its row; the row's `created_ms` is authoritative.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn decode_row(
    key: &crate::key::Key,
    bytes: &[u8],
    created_ms: i64,
) -> anyhow::Result<crate::entry::Meta> {
    crate::entry::Meta::decode_at(bytes, key, created_ms.max(0) as u64)
}

fn open(section: &Section, ctx: &Common) -> Box<dyn Store> {
    let config = match SqlConfig::from_section(section, &ctx.cache_dir) {
        Ok(config) => config,
        Err(why) => return unavailable::misconfigured("the sql backend", why),
    };
    match config {
        #[cfg(feature = "sqlite")]
        SqlConfig::Sqlite(path) => Box::new(sqlite::SqliteStore::new(path, ctx.read_only)),
        #[cfg(not(feature = "sqlite"))]
        SqlConfig::Sqlite(_) => unavailable::unbuilt("SQLite", "sqlite"),
        #[cfg(feature = "postgres")]
        SqlConfig::Postgres(url) => Box::new(postgres::PgStore::open(
            &url,
            ctx.read_only,
            ctx.compression,
        )),
        #[cfg(not(feature = "postgres"))]
        SqlConfig::Postgres(_) => unavailable::unbuilt("PostgreSQL", "postgres"),
    }
}
