//! How a body travels to a server: zstd-compressed by default (config
//! `compression`), raw on request. Local stores always keep raw bytes. The
//! entry records its encoding, so any client reads it back whatever its own
//! setting; checksums cover the raw bytes, checked after decoding.
use std::fs::File;
use std::io::{self, Read, Write};

pub use crate::entry::Encoding;

/// zstd's level for bodies: 3 compresses text 5-10x at several hundred
/// MB/s on one core (bench/run measures it against `zstd -3`).
pub const LEVEL: i32 = 3;

/// `compression` as the config file, `CACHIER_COMPRESSION` and errors spell it.
pub fn parse(text: &str) -> Result<Encoding, String> {
    match text.trim() {
        "zstd" => Ok(Encoding::Zstd),
        "none" => Ok(Encoding::Raw),
        other => Err(format!("`{other}` is not a compression; use zstd or none")),
    }
}

/// `raw` as it is sent under `encoding`: compressed as it is read, in
/// constant memory.
#[cfg_attr(
    not(any(
        feature = "postgres",
        feature = "redis",
        feature = "mongo",
        feature = "s3"
    )),
    allow(dead_code)
)]
pub fn encode<'a>(raw: impl Read + 'a, encoding: Encoding) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match encoding {
        Encoding::Raw => Box::new(raw),
        Encoding::Zstd => Box::new(zstd::stream::read::Encoder::new(raw, LEVEL)?),
    })
}

/// Where a fetched body's stored bytes go: decoded into a local temp file,
/// never past the raw length the metadata promises (so a planted stream
/// cannot fill the disk).
#[cfg_attr(
    not(any(
        feature = "postgres",
        feature = "redis",
        feature = "mongo",
        feature = "s3"
    )),
    allow(dead_code)
)]
pub enum Sink {
    Raw(Bounded),
    Zstd(Box<zstd::stream::write::Decoder<'static, Bounded>>),
}

#[cfg_attr(
    not(any(
        feature = "postgres",
        feature = "redis",
        feature = "mongo",
        feature = "s3"
    )),
    allow(dead_code)
)]
impl Sink {
    /// A sink writing into `file`, for a body of `want` raw bytes.
    pub fn new(file: File, encoding: Encoding, want: u64) -> io::Result<Sink> {
        let out = Bounded {
            file,
            written: 0,
            want,
        };
        Ok(match encoding {
            Encoding::Raw => Sink::Raw(out),
            Encoding::Zstd => Sink::Zstd(Box::new(zstd::stream::write::Decoder::new(out)?)),
        })
    }

    /// The raw bytes written, once the stream is complete.
    pub fn finish(self) -> io::Result<u64> {
        match self {
            Sink::Raw(out) => Ok(out.written),
            Sink::Zstd(mut decoder) => {
                decoder.flush()?;
                Ok(decoder.into_inner().written)
            }
        }
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Raw(out) => out.write(data),
            Sink::Zstd(decoder) => decoder.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Raw(out) => out.flush(),
            Sink::Zstd(decoder) => decoder.flush(),
        }
    }
}

/// A failed write into a [`Sink`]: a body that does not decode, or is
/// longer than promised, is corrupt; anything else (a full disk) is not.
#[cfg_attr(
    not(any(
        feature = "postgres",
        feature = "redis",
        feature = "mongo",
        feature = "s3"
    )),
    allow(dead_code)
)]
pub fn sink_error(e: io::Error, key: &crate::key::Key) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::Other | io::ErrorKind::UnexpectedEof => {
            crate::entry::Corrupt {
                key: key.short(),
                why: format!("its body does not decode: {e}"),
            }
            .into()
        }
        _ => anyhow::anyhow!("cannot write the cached output to a temp file: {e}"),
    }
}

/// A file that refuses to grow past the body's promised length.
pub struct Bounded {
    file: File,
    written: u64,
    want: u64,
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.written + data.len() as u64 > self.want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the stored body is longer than its metadata says",
            ));
        }
        let n = self.file.write(data)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_round_trips_and_is_bounded() {
        let raw: Vec<u8> = b"line of text\n".repeat(10_000);
        let mut packed = Vec::new();
        encode(&raw[..], Encoding::Zstd)
            .unwrap()
            .read_to_end(&mut packed)
            .unwrap();
        assert!(packed.len() * 20 < raw.len());
        let file = tempfile::tempfile().unwrap();
        let mut sink =
            Sink::new(file.try_clone().unwrap(), Encoding::Zstd, raw.len() as u64).unwrap();
        sink.write_all(&packed).unwrap();
        assert_eq!(sink.finish().unwrap(), raw.len() as u64);
        assert_eq!(file.metadata().unwrap().len(), raw.len() as u64);
        let short = tempfile::tempfile().unwrap();
        let mut sink = Sink::new(short, Encoding::Zstd, 10).unwrap();
        assert!(sink.write_all(&packed).is_err());
    }
}
