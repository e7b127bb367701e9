//! An entry's body as fetched to a local file, and how it is verified
//! against the metadata before any byte goes out.
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::{Meta, Outputs, Stream};

/// An entry's output: a local file holding stdout, stderr, then the outputs
/// archive, from `start`.
pub struct Body {
    pub file: File,
    pub start: u64,
}

/// The entry failed verification or could not be parsed: discard it.
#[derive(Debug, thiserror::Error)]
#[error("cache entry {key} is corrupt ({why})")]
pub struct Corrupt {
    pub key: String,
    pub why: String,
}

impl Body {
    /// Check each stream's BLAKE3, and the outputs archive's, against the
    /// metadata before any byte goes out.
    pub fn verify(&self, meta: &Meta) -> Result<(), Corrupt> {
        let mut segments = vec![
            (
                meta.offset(Stream::Stdout),
                meta.stdout_len,
                &meta.stdout_blake3,
            ),
            (
                meta.offset(Stream::Stderr),
                meta.stderr_len,
                &meta.stderr_blake3,
            ),
        ];
        if meta.outputs != Outputs::default() {
            let o = &meta.outputs;
            segments.push((meta.outputs_offset(), o.len, &o.blake3));
        }
        for (offset, len, want) in segments {
            let got = self.hash(offset, len).map_err(|e| Corrupt {
                key: meta.key.short(),
                why: format!("cannot read it: {e}"),
            })?;
            if &got != want {
                return Err(Corrupt {
                    key: meta.key.short(),
                    why: "checksum mismatch".into(),
                });
            }
        }
        Ok(())
    }

    fn hash(&self, offset: u64, len: u64) -> std::io::Result<[u8; 32]> {
        let mut hasher = blake3::Hasher::new();
        // One thread: BLAKE3 outruns the reads here, and rayon's workers
        // spin (sched_yield) between chunks, taking the core a restore's
        // writes need.
        self.each_chunk(offset, len, |chunk| {
            hasher.update(chunk);
            Ok(())
        })?;
        Ok(*hasher.finalize().as_bytes())
    }

    /// Hand `len` bytes of the body from `offset` to `f`, a chunk (≤ 1 MiB)
    /// at a time; a body that ends early is an `UnexpectedEof` error.
    pub fn each_chunk(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        const CHUNK: usize = 1 << 20;
        let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK)).max(1)];
        let mut done = 0u64;
        while done < len {
            let want = buf
                .len()
                .min(usize::try_from(len - done).unwrap_or(usize::MAX));
            let n = self
                .file
                .read_at(&mut buf[..want], self.start + offset + done)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the entry ended early",
                ));
            }
            f(&buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}
