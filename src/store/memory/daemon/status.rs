//! What `cachier daemon status` reports: a message of the daemon's protocol,
//! and the one piece of it every platform builds (elsewhere there is no
//! daemon, and `status` says so).
use serde::{Deserialize, Serialize};

/// What `cachier daemon status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub uptime_ms: u64,
    pub entries: u64,
    pub bytes: u64,
    pub hits: u64,
    pub max_memory: u64,
    pub idle_timeout_ms: u64,
    pub connections: u64,
    pub version: String,
    pub protocol: u32,
    /// Bytes of uploads in progress.
    #[serde(default)]
    pub uploading: u64,
    /// The servers it keeps connections to for pooled lookups (as
    /// `location` says them, never with a password), and how many each.
    #[serde(default)]
    pub pooled: Vec<(String, u64)>,
    /// `--input` trees under watch, and their directories.
    #[serde(default)]
    pub watched: (u64, u64),
}
