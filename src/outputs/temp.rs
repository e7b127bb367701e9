//! The temp files a restore writes beside each output before renaming it
//! into place: their names, how a capture knows them (never stored), and
//! how a later restore removes those a killed one left behind.
//!
//! A name is `.cachier-restore-PID-N-RANDOM.tmp` (RANDOM: 16 hex digits),
//! so it never meets a user's file; `.cachier-restore-PID-N.tmp`, what
//! earlier versions wrote, is recognized too. Nothing else is ever skipped
//! or removed.
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType};

const PREFIX: &[u8] = b".cachier-restore-";
const SUFFIX: &[u8] = b".tmp";
/// A temp file untouched this long is a killed restore's: a live one
/// renames each file moments after writing it (a restore stopped longer,
/// e.g. suspended, finds its file gone and reports the restore blocked).
const STALE: Duration = Duration::from_secs(15 * 60);

/// A name no other restore (this process or another) is using.
pub fn name() -> OsString {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut random = [0u8; 8];
    if getrandom::fill(&mut random).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        random = (nanos as u64).to_le_bytes();
    }
    let random = u64::from_le_bytes(random);
    format!(
        ".cachier-restore-{}-{n}-{random:016x}.tmp",
        std::process::id()
    )
    .into()
}

/// Whether `name` is exactly one of ours (this version's or an earlier one's).
pub fn is_ours(name: &OsStr) -> bool {
    let Some(middle) = name
        .as_bytes()
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
    else {
        return false;
    };
    let parts: Vec<&[u8]> = middle.split(|&b| b == b'-').collect();
    let digits = |p: &[u8]| !p.is_empty() && p.len() <= 20 && p.iter().all(u8::is_ascii_digit);
    match parts[..] {
        [pid, n] => digits(pid) && digits(n),
        [pid, n, random] => {
            digits(pid)
                && digits(n)
                && random.len() == 16
                && random
                    .iter()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        _ => false,
    }
}

/// Remove the stale temp files of ours in `dir` (regular files or
/// symlinks untouched for [`STALE`]). Best effort: what cannot be read or
/// removed stays, and the restore goes on.
pub fn sweep(dir: &OwnedFd) {
    let Ok(mut entries) = rustix::fs::Dir::read_from(dir) else {
        return;
    };
    let now = SystemTime::now();
    let mut stale = Vec::new();
    while let Some(Ok(entry)) = entries.next() {
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if !is_ours(name) {
            continue;
        }
        let Ok(stat) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        if !matches!(kind, FileType::RegularFile | FileType::Symlink) {
            continue;
        }
        let modified =
            SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(stat.st_mtime).unwrap_or(0));
        if now.duration_since(modified).is_ok_and(|age| age >= STALE) {
            stale.push(name.to_os_string());
        }
    }
    for name in stale {
        let _ = rustix::fs::unlinkat(dir, &name, AtFlags::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_exact_names() {
        assert!(is_ours(&name()));
        assert!(is_ours(OsStr::new(".cachier-restore-12-0.tmp")));
        for not in [
            ".cachier-restore-.tmp",
            ".cachier-restore-12.tmp",
            ".cachier-restore-12-0-xyz.tmp",
            ".cachier-restore-12-0-0123456789ABCDEF.tmp",
            ".cachier-restore-12-0-0123456789abcdef.tmp.bak",
            "cachier-restore-12-0.tmp",
            ".cachier-restore-a-0.tmp",
            ".cachier-restore-1-2-3-4.tmp",
        ] {
            assert!(!is_ours(OsStr::new(not)), "{not}");
        }
    }
}
