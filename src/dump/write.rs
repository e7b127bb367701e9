//! Writing a dump: header, one record per entry, end record.
use std::io::{self, Write};

use super::{END, ENTRY, MAGIC, MAX_META, VERSION};
use crate::entry::{Body, Meta};

/// Writes a dump: [`Writer::start`], one [`Writer::entry`] each, [`Writer::finish`].
pub struct Writer<W: Write> {
    out: W,
    entries: u64,
    bytes: u64,
}

impl<W: Write> Writer<W> {
    pub fn start(out: W) -> io::Result<Writer<W>> {
        let mut writer = Writer {
            out,
            entries: 0,
            bytes: 0,
        };
        writer.put(MAGIC)?;
        writer.put(&[VERSION])?;
        Ok(writer)
    }

    /// Append one entry. `body` must already be verified against `meta`.
    pub fn entry(&mut self, meta: &Meta, body: &Body) -> io::Result<()> {
        let mut head = vec![ENTRY, 0, 0, 0, 0];
        ciborium::into_writer(meta, &mut head).map_err(io::Error::other)?;
        let len = u32::try_from(head.len() - 5)
            .ok()
            .filter(|&len| len <= MAX_META)
            .ok_or_else(|| io::Error::other("its metadata is too large to export"))?;
        head[1..5].copy_from_slice(&len.to_le_bytes());
        self.put(&head)?;
        self.put(blake3::hash(&head).as_bytes())?;
        let (out, bytes) = (&mut self.out, &mut self.bytes);
        body.each_chunk(0, meta.body_len(), |chunk| {
            *bytes += chunk.len() as u64;
            out.write_all(chunk)
        })?;
        self.entries += 1;
        Ok(())
    }

    /// Write the end record and flush; the entries and bytes written.
    pub fn finish(mut self) -> io::Result<(u64, u64)> {
        let mut end = vec![END];
        end.extend_from_slice(&self.entries.to_le_bytes());
        self.put(&end)?;
        self.put(blake3::hash(&end).as_bytes())?;
        self.out.flush()?;
        Ok((self.entries, self.bytes))
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}
