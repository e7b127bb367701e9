//! The outputs archive: a framed record stream under zstd.
//!
//! ```text
//! archive = MAGIC record* 'z'
//! record  = kind:u8 path_len:u32le path mode:u32le len:u64le bytes[len]
//! kind    = 'f' file (bytes: content) | 'l' symlink (bytes: target) | 'd' directory (len 0)
//! ```
//! Not tar: tar has many header dialects (GNU long names, PAX, hard links,
//! devices, sparse files), each one more thing a restore must refuse, and
//! its readers create what they read. Here there are three kinds, a path
//! is bytes as given (newlines, non-UTF-8), and the reader only frames
//! records: `restore` checks every path before anything is written.
use std::io::{self, BufRead, Read, Write};

use crate::entry::{Body, Meta};

const MAGIC: &[u8; 16] = b"cachier-outputs1";
/// zstd's default, and what `tar | zstd -3` uses: on a build tree level 1
/// stored ~10 % more for little speed won, 6+ cost 2-3x the time.
const LEVEL: i32 = 3;
/// Longest path or symlink target a record may hold (Linux PATH_MAX).
pub const MAX_PATH: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Link,
    Dir,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Link => "link",
            Kind::Dir => "dir",
        }
    }

    fn tag(self) -> u8 {
        match self {
            Kind::File => b'f',
            Kind::Link => b'l',
            Kind::Dir => b'd',
        }
    }
}

/// One record's header; a file's content or a link's target follows.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: Kind,
    pub path: Vec<u8>,
    pub mode: u32,
    pub len: u64,
}

/// Writes an archive into `out`, compressing as it goes.
pub struct Writer<W: Write> {
    z: zstd::stream::write::Encoder<'static, W>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> io::Result<Writer<W>> {
        let mut z = zstd::stream::write::Encoder::new(out, LEVEL)?;
        z.write_all(MAGIC)?;
        Ok(Writer { z })
    }

    /// Append a record; `content` must yield exactly `len` bytes (a file
    /// that shrank while read is an error).
    pub fn record(&mut self, rec: &Record, content: &mut dyn Read) -> io::Result<()> {
        let path_len = u32::try_from(rec.path.len())
            .ok()
            .filter(|&n| n <= MAX_PATH)
            .ok_or_else(|| io::Error::other("a path is too long to store"))?;
        self.z.write_all(&[rec.kind.tag()])?;
        self.z.write_all(&path_len.to_le_bytes())?;
        self.z.write_all(&rec.path)?;
        self.z.write_all(&rec.mode.to_le_bytes())?;
        self.z.write_all(&rec.len.to_le_bytes())?;
        let copied = io::copy(&mut content.take(rec.len), &mut self.z)?;
        if copied != rec.len {
            return Err(io::Error::other(format!(
                "`{}` changed while it was stored",
                String::from_utf8_lossy(&rec.path)
            )));
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.z.write_all(b"z")?;
        self.z.finish()
    }
}

/// Reads an archive's records; any framing problem is a `Bad`.
pub struct Reader<R: BufRead> {
    z: zstd::stream::read::Decoder<'static, R>,
    /// Content of the last record not yet read.
    pending: u64,
}

/// Why an archive cannot be read: the entry is corrupt.
#[derive(Debug)]
pub struct Bad(pub String);

fn bad(why: impl Into<String>) -> Bad {
    Bad(why.into())
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Result<Reader<R>, Bad> {
        let z = zstd::stream::read::Decoder::with_buffer(input)
            .map_err(|e| bad(format!("unreadable outputs: {e}")))?;
        let mut reader = Reader { z, pending: 0 };
        let mut magic = [0u8; MAGIC.len()];
        reader.exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(bad("not an outputs archive"));
        }
        Ok(reader)
    }

    /// The next record (skipping the rest of the last one's content), or
    /// `None` at the end record, after which nothing may follow.
    pub fn next(&mut self) -> Result<Option<Record>, Bad> {
        self.skip()?;
        let mut tag = [0u8; 1];
        self.exact(&mut tag)?;
        let kind = match tag[0] {
            b'f' => Kind::File,
            b'l' => Kind::Link,
            b'd' => Kind::Dir,
            b'z' => {
                let mut more = [0u8; 1];
                return match self.z.read(&mut more) {
                    Ok(0) => Ok(None),
                    Ok(_) => Err(bad("data after the end of the outputs")),
                    Err(e) => Err(bad(format!("unreadable outputs: {e}"))),
                };
            }
            t => return Err(bad(format!("unknown output record {t:#04x}"))),
        };
        let mut n = [0u8; 4];
        self.exact(&mut n)?;
        let path_len = u32::from_le_bytes(n);
        if path_len == 0 || path_len > MAX_PATH {
            return Err(bad("an output path length is out of range"));
        }
        let mut path = vec![0u8; path_len as usize];
        self.exact(&mut path)?;
        self.exact(&mut n)?;
        let mode = u32::from_le_bytes(n);
        let mut len = [0u8; 8];
        self.exact(&mut len)?;
        let len = u64::from_le_bytes(len);
        self.pending = len;
        Ok(Some(Record {
            kind,
            path,
            mode,
            len,
        }))
    }

    /// The current record's content, which must be read whole (or skipped
    /// by the next `next`).
    pub fn content(&mut self) -> impl Read + '_ {
        let len = self.pending;
        self.pending = 0;
        Exact {
            inner: (&mut self.z).take(len),
            left: len,
        }
    }

    fn skip(&mut self) -> Result<(), Bad> {
        let len = self.pending;
        self.pending = 0;
        let got = io::copy(&mut (&mut self.z).take(len), &mut io::sink())
            .map_err(|e| bad(format!("unreadable outputs: {e}")))?;
        if got != len {
            return Err(bad("the outputs end inside a file"));
        }
        Ok(())
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), Bad> {
        self.z.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => bad("the outputs are cut short"),
            _ => bad(format!("unreadable outputs: {e}")),
        })
    }
}

/// A record's content: an early end is an error, not a short file.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the outputs end inside a file",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The outputs archive of a verified body, as a reader.
pub fn open<'a>(meta: &Meta, body: &'a Body) -> Result<Reader<io::BufReader<Segment<'a>>>, Bad> {
    let segment = Segment {
        body,
        at: meta.outputs_offset(),
        left: meta.outputs.len,
    };
    Reader::new(io::BufReader::with_capacity(1 << 16, segment))
}

/// A stretch of a body, read in place.
pub struct Segment<'a> {
    body: &'a Body,
    at: u64,
    left: u64,
}

impl Read for Segment<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self
            .body
            .file
            .read_at(&mut buf[..want], self.body.start + self.at)?;
        self.at += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Every record of a verified entry's outputs (path, kind, mode, length),
/// for `show --outputs`.
pub fn list(meta: &Meta, body: &Body) -> Result<Vec<Record>, Bad> {
    let mut all = Vec::new();
    if meta.outputs.len == 0 {
        return Ok(all);
    }
    let mut reader = open(meta, body)?;
    while let Some(rec) = reader.next()? {
        if all.len() as u64 >= meta.outputs.count {
            return Err(bad("more output records than the metadata declares"));
        }
        all.push(rec);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut w = Writer::new(Vec::new()).unwrap();
        let file = Record {
            kind: Kind::File,
            path: b"d/a\n\xff".to_vec(),
            mode: 0o755,
            len: 3,
        };
        w.record(&file, &mut &b"abc"[..]).unwrap();
        let dir = Record {
            kind: Kind::Dir,
            path: b"d/e".to_vec(),
            mode: 0o755,
            len: 0,
        };
        w.record(&dir, &mut io::empty()).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = Reader::new(&bytes[..]).unwrap();
        let got = r.next().unwrap().unwrap();
        assert_eq!((got.kind, got.path, got.len), (Kind::File, file.path, 3));
        let mut content = Vec::new();
        r.content().read_to_end(&mut content).unwrap();
        assert_eq!(content, b"abc");
        assert_eq!(r.next().unwrap().unwrap().kind, Kind::Dir);
        assert!(r.next().unwrap().is_none());
    }

    #[test]
    fn a_short_file_is_refused() {
        let mut w = Writer::new(Vec::new()).unwrap();
        let rec = Record {
            kind: Kind::File,
            path: b"a".to_vec(),
            mode: 0o644,
            len: 10,
        };
        assert!(w.record(&rec, &mut &b"abc"[..]).is_err());
    }
}
