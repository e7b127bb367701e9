//! The `sql` store: SQLite (embedded, the default) or PostgreSQL (by URL).
//! Each database is a cargo feature and its client is created on first use.
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use super::Store;
use crate::settings::SqlUrl;

pub fn open(url: &SqlUrl) -> Box<dyn Store> {
    match url {
        #[cfg(feature = "sqlite")]
        SqlUrl::Sqlite(path) => Box::new(sqlite::SqliteStore::new(path.clone())),
        #[cfg(not(feature = "sqlite"))]
        SqlUrl::Sqlite(_) => Box::new(Unbuilt("SQLite")),
        #[cfg(feature = "postgres")]
        SqlUrl::Postgres(url) => Box::new(postgres::PgStore::open(url)),
        #[cfg(not(feature = "postgres"))]
        SqlUrl::Postgres(_) => Box::new(Unbuilt("PostgreSQL")),
    }
}

#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
use unbuilt::Unbuilt;

#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
mod unbuilt {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use anyhow::{Result, bail};

    use crate::entry::Event;
    use crate::key::Key;
    use crate::store::{Claim, Counters, Found, Holder, Listed, Spool, Store};

    /// A database this build left out (its cargo feature is off): every call
    /// fails clearly, so a run warns once and runs uncached.
    pub struct Unbuilt(pub &'static str);

    impl Unbuilt {
        fn fail<T>(&self) -> Result<T> {
            bail!(
                "this build of cachier leaves out {} (cargo feature off); use --backend file",
                self.0
            )
        }
    }

    impl Store for Unbuilt {
        fn get(&self, _: &Key) -> Result<Option<Found>> {
            self.fail()
        }
        fn begin(&self, _: &Key) -> Result<Box<dyn Spool>> {
            self.fail()
        }
        fn claim(&self, _: &Key, _: &Holder) -> Result<Claim> {
            self.fail()
        }
        fn wait(&self, _: &Key, _: Option<Duration>) -> Result<bool> {
            self.fail()
        }
        fn remove(&self, _: &Key, _: &str) -> Result<u64> {
            self.fail()
        }
        fn list(&self, _: Option<&str>) -> Result<Vec<Listed>> {
            self.fail()
        }
        fn record(&self, _: &str, _: &Key, _: Event) -> Result<()> {
            self.fail()
        }
        fn counters(&self) -> Result<BTreeMap<String, Counters>> {
            self.fail()
        }
        fn reset_counters(&self) -> Result<()> {
            self.fail()
        }
        fn clear_claims(&self) -> Result<u64> {
            self.fail()
        }
        fn location(&self) -> String {
            self.0.to_string()
        }
        fn once_per(&self, _: &str, _: Duration) -> Result<bool> {
            self.fail()
        }
    }
}
