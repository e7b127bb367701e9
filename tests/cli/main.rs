//! End-to-end tests of the `cachier` binary, run the way a user runs it.
mod backend;
mod compression;
mod config;
mod conformance;
mod dump;
mod faults;
mod fuzzed;
mod generated;
mod harness;
mod hash_cache;
mod inputs;
mod key;
mod listing_index;
mod memory_daemon;
mod memory_faults;
#[cfg(feature = "mongo")]
mod mongo_faults;
#[cfg(feature = "mongo")]
mod mongo_store;
mod outputs;
mod own_server;
mod pg_faults;
mod pg_store;
mod pg_tls;
mod pool;
mod pool_sqlite;
mod program;
mod proxy;
mod redis_faults;
mod redis_store;
mod restarts;
mod rules;
mod running;
#[cfg(feature = "s3")]
mod s3_faults;
#[cfg(feature = "s3")]
mod s3_front;
#[cfg(feature = "s3")]
mod s3_store;
#[cfg(feature = "s3")]
mod s3_waiters;
mod signing;
mod silent;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_files;
mod startup;
mod terminal;
#[cfg(feature = "sqlite")]
mod tiers;
mod trust;
mod unreachable;
mod usage;
mod watch;
