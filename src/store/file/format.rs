//! The on-disk entry file: stdout bytes, stderr bytes, CBOR metadata, trailer.
//!
//! ```text
//! [stdout][stderr][meta: CBOR][meta length: u32 LE][MAGIC]
//! ```
//! Output comes first so a miss can spool stdout straight into the entry
//! file; the metadata, known only at the end, goes last.
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use crate::entry::{Corrupt, Meta, NewerFormat};
use crate::key::Key;

/// Identifies the format; bump the last byte when the layout changes.
pub const MAGIC: &[u8; 8] = b"cachier\x01";
const TRAILER: u64 = 4 + MAGIC.len() as u64;
/// One read from the end usually covers the metadata and the trailer.
const TAIL_GUESS: u64 = 4096;

/// Read and check the metadata of an entry file of `size` bytes.
pub fn read_meta(file: &File, size: u64, key: &Key) -> anyhow::Result<Meta> {
    read_meta_into(file, size, key, &mut Vec::new())
}

/// [`read_meta`], reading into `buf`: a scan reuses one buffer for all.
pub fn read_meta_into(
    file: &File,
    size: u64,
    key: &Key,
    buf: &mut Vec<u8>,
) -> anyhow::Result<Meta> {
    read_meta_sized(file, size, key, buf).map(|(meta, _)| meta)
}

/// [`read_meta_into`], with the length of the metadata's CBOR in the file.
pub fn read_meta_sized(
    file: &File,
    size: u64,
    key: &Key,
    buf: &mut Vec<u8>,
) -> anyhow::Result<(Meta, u64)> {
    let bad = |why: &str| Corrupt {
        key: key.short(),
        why: why.to_string(),
    };
    if size < TRAILER {
        return Err(bad("truncated").into());
    }
    let tail_len = size.min(TAIL_GUESS);
    buf.clear();
    buf.resize(tail_len as usize, 0);
    file.read_exact_at(buf, size - tail_len)
        .map_err(|_| bad("truncated"))?;
    let tail = &buf[..];
    let trailer = &tail[tail.len() - TRAILER as usize..];
    if &trailer[4..] != MAGIC {
        // A later layout, marked by a higher last byte: left alone.
        let layout = trailer[TRAILER as usize - 1];
        if trailer[4..TRAILER as usize - 1] == MAGIC[..7] && layout > MAGIC[7] {
            return Err(NewerFormat {
                key: key.short(),
                format: u32::from(layout),
            }
            .into());
        }
        return Err(bad("unknown format or truncated").into());
    }
    let meta_len = u64::from(u32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]));
    if meta_len + TRAILER > size {
        return Err(bad("truncated").into());
    }
    let mut long = Vec::new();
    let bytes = if meta_len + TRAILER <= tail_len {
        let end = tail.len() - TRAILER as usize;
        &tail[end - meta_len as usize..end]
    } else {
        long.resize(meta_len as usize, 0);
        file.read_exact_at(&mut long, size - TRAILER - meta_len)
            .map_err(|_| bad("truncated"))?;
        &long[..]
    };
    let meta = Meta::decode(bytes, key)?;
    // `decode` checked that the output lengths add up; the trailer may not.
    if !fits(&meta, meta_len, size) {
        return Err(bad("length mismatch").into());
    }
    Ok((meta, meta_len))
}

/// Whether an entry file of `size` bytes holds `meta`'s body, `meta_len`
/// bytes of metadata and the trailer, and nothing else.
pub fn fits(meta: &Meta, meta_len: u64, size: u64) -> bool {
    meta.body_len().checked_add(meta_len + TRAILER) == Some(size)
}

/// Append the metadata and trailer after the output already in `file`.
pub fn write_meta(file: &mut File, meta: &Meta) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    ciborium::into_writer(meta, &mut bytes).map_err(std::io::Error::other)?;
    let len =
        u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("metadata too large"))?;
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(MAGIC);
    file.write_all(&bytes)
}
