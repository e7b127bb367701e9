//! Reading a dump, verifying each record before its entry is handed on.
use std::io::{self, Read};

use super::{CHUNK, END, ENTRY, MAGIC, MAX_META, Problem, StreamError, VERSION};
use crate::entry::{Meta, Stream};
use crate::key::Key;

/// Reads a dump: [`Reader::open`], then [`Reader::next_entry`] for each
/// entry's metadata and [`Reader::chunk`] for its output, verified as it goes.
pub struct Reader<R: Read> {
    input: R,
    buf: Vec<u8>,
    bytes: u64,
    record: u64,
    entries: u64,
    body: Option<Pending>,
}

/// The output of the entry being read, and what it must hash to.
struct Pending {
    key: Key,
    /// Stdout, stderr, the outputs archive.
    left: [u64; 3],
    want: [[u8; 32]; 3],
    stream: usize,
    hasher: blake3::Hasher,
}

impl<R: Read> Reader<R> {
    pub fn open(input: R) -> Result<Reader<R>, StreamError> {
        let mut reader = Reader {
            input,
            buf: vec![0; CHUNK],
            bytes: 0,
            record: 0,
            entries: 0,
            body: None,
        };
        match reader.byte()? {
            Some(first) => reader.header(first)?,
            None => return Err(reader.fail(None, Problem::Empty)),
        }
        Ok(reader)
    }

    /// Bytes consumed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The next entry's verified metadata (skipping the rest of the previous
    /// entry's output), or `None` after a verified end record at the end.
    pub fn next_entry(&mut self) -> Result<Option<Meta>, StreamError> {
        while self.chunk()?.is_some() {}
        loop {
            self.record += 1;
            match self.byte()? {
                Some(ENTRY) => return self.entry().map(Some),
                Some(END) => self.end()?,
                Some(tag) => {
                    return Err(
                        self.fail(None, Problem::Corrupt(format!("unknown tag {tag:#04x}")))
                    );
                }
                None => return Err(self.fail(None, Problem::NoEnd)),
            }
            // After an end record: the end of the stream, or another dump.
            match self.byte()? {
                None => return Ok(None),
                Some(first) => self.header(first)?,
            }
        }
    }

    /// The next piece of the current entry's output, or `None` once all of
    /// it is read and each stream's checksum verified.
    pub fn chunk(&mut self) -> Result<Option<(Stream, &[u8])>, StreamError> {
        let Some(p) = self.body.as_mut() else {
            return Ok(None);
        };
        while p.stream < 3 && p.left[p.stream] == 0 {
            if p.hasher.finalize().as_bytes() != &p.want[p.stream] {
                let why = format!(
                    "{} checksum mismatch",
                    ["stdout", "stderr", "outputs"][p.stream]
                );
                let key = p.key;
                return Err(self.fail(Some(key), Problem::Corrupt(why)));
            }
            p.hasher = blake3::Hasher::new();
            p.stream += 1;
        }
        if p.stream == 3 {
            self.body = None;
            return Ok(None);
        }
        let want = self
            .buf
            .len()
            .min(usize::try_from(p.left[p.stream]).unwrap_or(usize::MAX));
        let n = loop {
            match self.input.read(&mut self.buf[..want]) {
                Ok(0) => {
                    let key = p.key;
                    return Err(self.fail(Some(key), Problem::CutShort));
                }
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let key = p.key;
                    return Err(self.fail(Some(key), Problem::Read(e)));
                }
            }
        };
        p.hasher.update(&self.buf[..n]);
        p.left[p.stream] -= n as u64;
        self.bytes += n as u64;
        // The outputs archive follows stderr in a spool, as stderr's tail.
        let stream = [Stream::Stdout, Stream::Stderr, Stream::Stderr][p.stream];
        Ok(Some((stream, &self.buf[..n])))
    }

    fn header(&mut self, first: u8) -> Result<(), StreamError> {
        let mut rest = [0u8; MAGIC.len()];
        rest[0] = first;
        let got = self.read_up_to(&mut rest[1..])?;
        if got + 1 < MAGIC.len() || &rest != MAGIC {
            let problem = if self.record == 0 {
                Problem::NotADump
            } else {
                Problem::Trailing
            };
            return Err(self.fail(None, problem));
        }
        match self.byte()? {
            // Version 1 dumps predate outputs: their entries have none.
            Some(1 | VERSION) => {}
            Some(v) => return Err(self.fail(None, Problem::Version(v))),
            None => return Err(self.fail(None, Problem::NotADump)),
        }
        self.entries = 0;
        Ok(())
    }

    fn entry(&mut self) -> Result<Meta, StreamError> {
        let mut len = [0u8; 4];
        self.exact(&mut len)?;
        let len = u32::from_le_bytes(len);
        if len > MAX_META {
            return Err(self.corrupt("metadata length out of range"));
        }
        let mut head = vec![ENTRY];
        head.extend_from_slice(&len.to_le_bytes());
        // Grows only as bytes arrive: a bad length costs no big allocation.
        let got = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut head)
            .map_err(|e| self.fail(None, Problem::Read(e)))?;
        self.bytes += got as u64;
        if got < len as usize {
            return Err(self.fail(None, Problem::CutShort));
        }
        self.check(&head, "metadata checksum mismatch")?;
        let meta: Meta = ciborium::from_reader(&head[5..])
            .map_err(|e| self.corrupt(&format!("unreadable metadata: {e}")))?;
        meta.check_lengths().map_err(|why| self.corrupt(why))?;
        self.entries += 1;
        self.body = Some(Pending {
            key: meta.key,
            left: [meta.stdout_len, meta.stderr_len, meta.outputs.len],
            want: [
                meta.stdout_blake3,
                meta.stderr_blake3,
                if meta.outputs == Default::default() {
                    *blake3::hash(b"").as_bytes()
                } else {
                    meta.outputs.blake3
                },
            ],
            stream: 0,
            hasher: blake3::Hasher::new(),
        });
        Ok(meta)
    }

    fn end(&mut self) -> Result<(), StreamError> {
        let mut count = [0u8; 8];
        self.exact(&mut count)?;
        let mut end = vec![END];
        end.extend_from_slice(&count);
        self.check(&end, "end record checksum mismatch")?;
        let count = u64::from_le_bytes(count);
        if count != self.entries {
            let why = format!(
                "the end record counts {count} entries, {} came before it",
                self.entries
            );
            return Err(self.fail(None, Problem::Corrupt(why)));
        }
        Ok(())
    }

    /// Read the 32-byte checksum that follows `record` and compare.
    fn check(&mut self, record: &[u8], why: &str) -> Result<(), StreamError> {
        let mut check = [0u8; 32];
        self.exact(&mut check)?;
        if blake3::hash(record).as_bytes() != &check {
            return Err(self.corrupt(why));
        }
        Ok(())
    }

    fn byte(&mut self) -> Result<Option<u8>, StreamError> {
        let mut b = [0u8; 1];
        Ok((self.read_up_to(&mut b)? == 1).then_some(b[0]))
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), StreamError> {
        if self.read_up_to(buf)? < buf.len() {
            return Err(self.fail(None, Problem::CutShort));
        }
        Ok(())
    }

    /// Fill `buf` unless the stream ends first; how many bytes were read.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        let mut got = 0;
        while got < buf.len() {
            match self.input.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(None, Problem::Read(e))),
            }
        }
        self.bytes += got as u64;
        Ok(got)
    }

    fn corrupt(&self, why: &str) -> StreamError {
        self.fail(None, Problem::Corrupt(why.to_string()))
    }

    fn fail(&self, key: Option<Key>, problem: Problem) -> StreamError {
        StreamError {
            record: self.record,
            key,
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_bytes::ByteBuf;

    use super::*;
    use crate::dump::Writer;
    use crate::entry::{Body, Run};

    fn entry(n: u8, stdout: &[u8], stderr: &[u8]) -> (Meta, Body) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(stdout).unwrap();
        file.write_all(stderr).unwrap();
        let meta = Meta {
            key: Key([n; 32]),
            namespace: "ns".into(),
            argv: vec![ByteBuf::from(b"echo".to_vec())],
            components: Vec::new(),
            exit_code: 0,
            stdout_len: stdout.len() as u64,
            stderr_len: stderr.len() as u64,
            runs: [(Stream::Stdout, stdout), (Stream::Stderr, stderr)]
                .into_iter()
                .filter(|(_, out)| !out.is_empty())
                .map(|(stream, out)| Run {
                    stream,
                    len: out.len() as u64,
                })
                .collect(),
            duration_ms: 5,
            created_ms: 1_700_000_000_000,
            host: "h".into(),
            pid: 1,
            user: "u".into(),
            stdout_blake3: *blake3::hash(stdout).as_bytes(),
            stderr_blake3: *blake3::hash(stderr).as_bytes(),
            format: crate::entry::FORMAT,
            outputs: Default::default(),
            seal: None,
            encoding: crate::entry::Encoding::Raw,
        };
        (meta, Body { file, start: 0 })
    }

    fn dump() -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = Writer::start(&mut bytes).unwrap();
        for (n, out, err) in [(1, &b"one\n"[..], &b"\x00\xff"[..]), (2, b"", b"two")] {
            let (meta, body) = entry(n, out, err);
            writer.entry(&meta, &body).unwrap();
        }
        assert_eq!(writer.finish().unwrap().0, 2);
        bytes
    }

    /// An entry as read back: its key's first byte, stdout, stderr.
    type Got = (u8, Vec<u8>, Vec<u8>);

    /// Read a whole dump.
    fn drain(bytes: &[u8]) -> Result<Vec<Got>, StreamError> {
        let mut reader = Reader::open(bytes)?;
        let mut got = Vec::new();
        while let Some(meta) = reader.next_entry()? {
            let mut out = [Vec::new(), Vec::new()];
            while let Some((stream, data)) = reader.chunk()? {
                out[stream as usize].extend_from_slice(data);
            }
            let [stdout, stderr] = out;
            got.push((meta.key.0[0], stdout, stderr));
        }
        Ok(got)
    }

    #[test]
    fn round_trip_and_concatenation() {
        let one = dump();
        let want = vec![
            (1, b"one\n".to_vec(), b"\x00\xff".to_vec()),
            (2, Vec::new(), b"two".to_vec()),
        ];
        assert_eq!(drain(&one).unwrap(), want);
        let two = [one.clone(), one].concat();
        assert_eq!(drain(&two).unwrap().len(), 4);
    }

    /// Found by the dump_stream fuzz target: a record whose checksums are
    /// right but whose runs overflow was handed on, to panic in the replay.
    #[test]
    fn runs_that_miss_the_lengths_are_corrupt() {
        let (mut meta, body) = entry(1, b"out", b"");
        meta.runs.push(Run {
            stream: Stream::Stdout,
            len: u64::MAX,
        });
        let mut bytes = Vec::new();
        let mut writer = Writer::start(&mut bytes).unwrap();
        writer.entry(&meta, &body).unwrap();
        writer.finish().unwrap();
        let err = drain(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "record 1 is corrupt (output runs out of range)"
        );
    }

    #[test]
    fn every_cut_and_every_flipped_bit_is_an_error() {
        let bytes = dump();
        for cut in 0..bytes.len() {
            assert!(drain(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[at] ^= 1 << bit;
                assert!(drain(&bad).is_err(), "bit {bit} of byte {at}");
            }
        }
    }
}
