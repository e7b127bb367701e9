//! The `sql` store: SQLite (embedded, the default) or PostgreSQL (by URL).
//! Each database is a cargo feature and its client is created on first use.
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use super::Store;
#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
use super::unavailable;
use crate::settings::SqlUrl;

pub fn open(url: &SqlUrl) -> Box<dyn Store> {
    match url {
        #[cfg(feature = "sqlite")]
        SqlUrl::Sqlite(path) => Box::new(sqlite::SqliteStore::new(path.clone())),
        #[cfg(not(feature = "sqlite"))]
        SqlUrl::Sqlite(_) => unavailable::unbuilt("SQLite", "sqlite"),
        #[cfg(feature = "postgres")]
        SqlUrl::Postgres(url) => Box::new(postgres::PgStore::open(url)),
        #[cfg(not(feature = "postgres"))]
        SqlUrl::Postgres(_) => unavailable::unbuilt("PostgreSQL", "postgres"),
    }
}
