//! `cachier daemon` where the memory backend cannot run: its daemon needs
//! Linux (sealed memfd bodies, peer credentials on its socket), so every
//! action says so in one line.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

use super::MemoryConfig;

/// Why the memory backend is unavailable on this platform.
pub const UNSUPPORTED: &str = "the memory backend needs Linux (sealed memfd bodies, \
     peer credentials); use --backend file or --backend sql";

pub use super::daemon::status::Status;

pub fn socket() -> PathBuf {
    PathBuf::new()
}

pub fn start(_: MemoryConfig, _: Option<Duration>) -> Result<(u32, bool)> {
    bail!("{UNSUPPORTED}")
}

pub fn stop() -> Result<Option<u32>> {
    bail!("{UNSUPPORTED}")
}

pub fn status() -> Result<Option<Status>> {
    bail!("{UNSUPPORTED}")
}

pub fn serve(_: MemoryConfig, _: Option<Duration>) -> Result<()> {
    bail!("{UNSUPPORTED}")
}

pub fn debug_age(_: u64) -> Result<()> {
    bail!("{UNSUPPORTED}")
}

pub fn debug_damage(_: bool) -> Result<()> {
    bail!("{UNSUPPORTED}")
}
