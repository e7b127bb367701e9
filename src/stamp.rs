//! What identifies one version of a file (device, inode, size, mtime ns,
//! ctime ns), and when something learnt from a file may be remembered
//! against its stamp at all (the "racily clean" guard, as git's index has).
//! Shared by the hash cache of inputs and the file store's listing index.
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Files changed this recently (before a walk or scan began) are not
/// remembered. It covers 1 s and 2 s filesystem timestamps, the kernel's
/// coarse clock and a little clock skew on network filesystems.
pub const RACY_MARGIN: Duration = Duration::from_secs(2);

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Stamp {
        let ns = |n: i64| u32::try_from(n).unwrap_or(0);
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), ns(meta.mtime_nsec())),
            ctime: (meta.ctime(), ns(meta.ctime_nsec())),
        }
    }

    /// The same from a `stat` result (field types differ between targets).
    #[allow(clippy::useless_conversion)]
    pub fn of_stat(st: &rustix::fs::Stat) -> Stamp {
        let ns = |n| u32::try_from(n).unwrap_or(0);
        Stamp {
            // (`dev_t` is i32 on macOS: its bits, as a number.)
            #[allow(clippy::unnecessary_cast)]
            dev: st.st_dev as u64,
            ino: u64::from(st.st_ino),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: (i64::from(st.st_mtime), ns(st.st_mtime_nsec)),
            ctime: (i64::from(st.st_ctime), ns(st.st_ctime_nsec)),
        }
    }

    /// Whether what was learnt from this file after `began` may be
    /// remembered: both its times lie at least [`RACY_MARGIN`] before
    /// `began`, so a later write in the same timestamp tick cannot hide
    /// behind an unchanged stamp.
    pub fn settled(&self, began: SystemTime) -> bool {
        let Some(limit) = began
            .checked_sub(RACY_MARGIN)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        else {
            return false;
        };
        let limit = (
            i64::try_from(limit.as_secs()).unwrap_or(i64::MAX),
            limit.subsec_nanos(),
        );
        self.mtime < limit && self.ctime < limit
    }

    /// Its 48 bytes in a record (integers little-endian).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dev.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime.0.to_le_bytes());
        out.extend_from_slice(&self.mtime.1.to_le_bytes());
        out.extend_from_slice(&self.ctime.0.to_le_bytes());
        out.extend_from_slice(&self.ctime.1.to_le_bytes());
    }

    /// The stamp [`Stamp::encode`] wrote at the start of `b` (which holds
    /// at least [`Stamp::LEN`] bytes; missing bytes read as zero).
    pub fn decode(b: &[u8]) -> Stamp {
        let u64_at = |i: usize| {
            let bytes = b.get(i..i + 8).and_then(|s| s.try_into().ok());
            u64::from_le_bytes(bytes.unwrap_or([0; 8]))
        };
        let u32_at = |i: usize| {
            let bytes = b.get(i..i + 4).and_then(|s| s.try_into().ok());
            u32::from_le_bytes(bytes.unwrap_or([0; 4]))
        };
        Stamp {
            dev: u64_at(0),
            ino: u64_at(8),
            size: u64_at(16),
            mtime: (u64_at(24) as i64, u32_at(32)),
            ctime: (u64_at(36) as i64, u32_at(44)),
        }
    }

    /// The length of its encoding.
    pub const LEN: usize = 48;
}
