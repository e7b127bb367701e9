//! The export format: a versioned stream of entries that `cachier export`
//! writes and `cachier import` reads, in constant memory, on any backend.
//!
//! ```text
//! dump   = header record* end          (dumps may be concatenated)
//! header = "cachier-dump\n" version:u8 (version 2; 1 is read too)
//! entry  = 'E' len:u32le meta:CBOR[len] check:32 stdout stderr outputs
//! end    = 'Z' count:u64le check:32    (count = entries since the header)
//! ```
//! `meta` is the entry's metadata ([`crate::entry::Meta`], CBOR with field
//! names), which holds the length and BLAKE3 of stdout, of stderr and of
//! the outputs archive (`--output` files; none before version 2). `check`
//! is the BLAKE3 of the record's bytes before it, tag included. So every byte
//! of a record is checksummed, and its lengths are verified before any output
//! is read: a flipped length is reported as corruption, not misread as a short
//! stream. The end record's count detects a dump cut at a record boundary.
mod read;
mod write;

use std::fmt;
use std::io;

use crate::key::Key;

pub use read::Reader;
pub use write::Writer;

pub const MAGIC: &[u8; 13] = b"cachier-dump\n";
/// Bump when the layout or the metadata's meaning changes. 2: an entry's
/// outputs archive follows its stderr (version 1 had none, and still imports).
pub const VERSION: u8 = 2;
const ENTRY: u8 = b'E';
const END: u8 = b'Z';
/// No real entry's metadata comes near this; a larger length is corruption.
const MAX_META: u32 = 64 << 20;
/// Output moves through one buffer of this size: memory does not grow with it.
const CHUNK: usize = 1 << 16;

/// What is wrong with a stream. Every kind but `Read` is bad input.
#[derive(Debug)]
pub enum Problem {
    Empty,
    NotADump,
    Version(u8),
    /// The stream ends inside a record.
    CutShort,
    /// The stream ends between records, without an end record.
    NoEnd,
    Corrupt(String),
    /// Something other than another dump follows an end record.
    Trailing,
    Read(io::Error),
}

/// A stream problem, with the record it was found in (1-based, the end
/// records counted too) and that record's key once its metadata verified.
#[derive(Debug)]
pub struct StreamError {
    pub record: u64,
    pub key: Option<Key>,
    pub problem: Problem,
}

impl std::error::Error for StreamError {}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = self.record;
        match &self.problem {
            Problem::Empty => {
                return f.write_str(
                    "the input is empty, not a cachier dump; make one with `cachier export > dump`",
                );
            }
            Problem::NotADump => {
                return f.write_str(
                    "the input is not a cachier dump (it does not start with `cachier-dump`); \
                     make one with `cachier export > dump`",
                );
            }
            Problem::Version(v) => {
                return write!(
                    f,
                    "this dump has format version {v}, this cachier reads version {VERSION}; \
                     import it with a newer cachier"
                );
            }
            Problem::NoEnd if record <= 1 => {
                return f.write_str("the dump is cut short after its header (no end record)");
            }
            Problem::NoEnd => {
                return write!(
                    f,
                    "the dump is cut short after record {} (no end record)",
                    record - 1
                );
            }
            Problem::Trailing => {
                return write!(f, "unexpected data after the end record (record {record})");
            }
            Problem::Read(e) if record == 0 => return write!(f, "cannot read the dump: {e}"),
            Problem::Read(e) => return write!(f, "cannot read the dump at record {record}: {e}"),
            _ => {}
        }
        write!(f, "record {record}")?;
        if let Some(key) = &self.key {
            write!(f, " (key {})", key.short())?;
        }
        match &self.problem {
            Problem::CutShort => f.write_str(" is cut short: the stream ends inside it"),
            Problem::Corrupt(why) => write!(f, " is corrupt ({why})"),
            _ => Ok(()),
        }
    }
}
