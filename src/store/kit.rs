//! What the backends share: the chunk size of stored bodies, random tokens
//! for claims and generations, and private directories.
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The largest piece a server backend stores or fetches a body in: large
/// enough to amortise a round trip, small enough to bound memory.
#[allow(dead_code)] // each user is a cargo feature
pub const CHUNK: usize = 1 << 20;

/// 64 bits nobody else picks: a claim token's tail, a generation id. Not
/// secret, just unique: the time, this process, a counter and the host.
#[allow(dead_code)] // each user is a cargo feature
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(crate::entry::host().as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(out)
}

/// Create `path` and its parents with mode 0700 (not chmod after the fact).
pub fn make_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_differ() {
        assert_ne!(super::random_u64(), super::random_u64());
    }
}
