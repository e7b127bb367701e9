//! The keys of one shard directory's entries, read and sorted: on Linux
//! with raw `getdents64` into a buffer reused from shard to shard (no
//! allocation per name, as `std::fs::read_dir` makes), elsewhere with
//! `std::fs::read_dir`. Only names as the store writes them (64 lower-case
//! hex digits) are keys.
use std::ffi::CStr;
use std::path::Path;

#[cfg(not(target_os = "linux"))]
use anyhow::Context;
use anyhow::Result;
use rustix::fd::AsFd;

/// What a name spelled as the store spells it is the key of, if it is one:
/// another spelling of a key (upper-case hex) is no entry `get` would read,
/// and would list one entry twice.
pub fn key_of(name: &[u8]) -> Option<[u8; 32]> {
    let name: &[u8; 64] = name.try_into().ok()?;
    let mut key = [0u8; 32];
    // Every pair decoded, one check at the end: a listing decodes every
    // name of the store, and a branch per digit was a visible share of it.
    let mut bad = 0u8;
    for (k, pair) in key.iter_mut().zip(name.chunks_exact(2)) {
        let (hi, lo) = (DIGIT[usize::from(pair[0])], DIGIT[usize::from(pair[1])]);
        bad |= (hi | lo) & 0xf0;
        *k = hi << 4 | lo;
    }
    (bad == 0).then_some(key)
}

/// Each byte's value as a lower-case hex digit, or 0xff if it is none.
const DIGIT: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The entry file name of `key` (its 64 hex digits), NUL-terminated in `buf`.
pub fn name_of<'a>(key: &[u8; 32], buf: &'a mut [u8; 65]) -> &'a CStr {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in buf.chunks_exact_mut(2).zip(key) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
    buf[64] = 0;
    // 64 hex digits then one NUL: never fails.
    CStr::from_bytes_with_nul(&buf[..]).unwrap_or_default()
}

/// The keys of the entries in the directory open as `dir` (at `path`),
/// sorted, into `keys` (cleared first); `buf` is the reading buffer, kept
/// for the next shard. A read that fails part way ends the list there, as
/// `std::fs::read_dir`'s names end.
#[cfg(target_os = "linux")]
pub fn sorted_keys(
    dir: impl AsFd,
    _path: &Path,
    buf: &mut Vec<u8>,
    keys: &mut Vec<[u8; 32]>,
) -> Result<()> {
    keys.clear();
    if buf.capacity() < READ_BUF {
        buf.reserve(READ_BUF);
    }
    let mut names = rustix::fs::RawDir::new(dir, buf.spare_capacity_mut());
    while let Some(Ok(entry)) = names.next() {
        if let Some(key) = key_of(entry.file_name().to_bytes()) {
            keys.push(key);
        }
    }
    keys.sort_unstable();
    Ok(())
}

/// Bytes read from a directory at a time: a shard of a million-entry store
/// (~4,000 names of 88 bytes each) in a few reads.
#[cfg(target_os = "linux")]
const READ_BUF: usize = 64 << 10;

#[cfg(not(target_os = "linux"))]
pub fn sorted_keys(
    _dir: impl AsFd,
    path: &Path,
    _buf: &mut Vec<u8>,
    keys: &mut Vec<[u8; 32]>,
) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    keys.clear();
    match std::fs::read_dir(path) {
        Ok(entries) => {
            keys.extend(entries.filter_map(|e| key_of(e.ok()?.file_name().as_bytes())));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    keys.sort_unstable();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name is a key only as the store spells it, and spells back the same.
    #[test]
    fn names_and_keys() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        let mut buf = [0u8; 65];
        let name = name_of(&key, &mut buf).to_bytes().to_vec();
        assert_eq!(name, blake3::Hash::from_bytes(key).to_hex().as_bytes());
        assert_eq!(key_of(&name), Some(key));
        assert_eq!(key_of(&name[..63]), None);
        assert_eq!(key_of(&name.to_ascii_uppercase()), None);
        assert_eq!(key_of(b".."), None);
        let mut odd = name.clone();
        odd[10] = b'g';
        assert_eq!(key_of(&odd), None);
    }

    /// Every entry name of a directory, sorted, whatever else is in it.
    #[test]
    fn sorted_keys_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut want = Vec::new();
        let mut buf = [0u8; 65];
        // More than one read's worth of names.
        for i in 0..1500u32 {
            let key = *blake3::hash(&i.to_le_bytes()).as_bytes();
            let name = name_of(&key, &mut buf).to_str().unwrap().to_string();
            std::fs::write(dir.path().join(name), b"").unwrap();
            want.push(key);
        }
        std::fs::write(dir.path().join("ABC"), b"").unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        want.sort();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let (mut read, mut keys) = (Vec::new(), vec![[9; 32]]);
        sorted_keys(&fd, dir.path(), &mut read, &mut keys).unwrap();
        assert!(keys == want);
    }
}
