//! `--output` globs over paths as bytes: Linux names need not be UTF-8,
//! and the `glob` crate matches only `str` (a non-UTF-8 path never
//! matched, so `out/*` silently left `out/\xff.bin` behind and `!*.tmp`
//! kept `\xff.tmp`).
//!
//! Pattern and path go through one mapping: UTF-8 as it is, each byte of
//! an invalid sequence as one private-use character (U+10FF00 + byte). A
//! raw byte in a pattern then matches that byte, and `?` or `*` match
//! such bytes as they match characters. (A name that really holds one of
//! those 128 plane-16 private-use characters would match the raw byte
//! too; no tool writes them.)
use std::borrow::Cow;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BASE: u32 = 0x10_FF00;

const OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

#[derive(Clone, Debug)]
pub struct Glob {
    pattern: glob::Pattern,
    raw: Vec<u8>,
}

impl Glob {
    pub fn new(raw: &[u8]) -> Result<Glob, glob::PatternError> {
        Ok(Glob {
            pattern: glob::Pattern::new(&text(raw))?,
            raw: raw.to_vec(),
        })
    }

    pub fn matches(&self, path: &Path) -> bool {
        self.pattern
            .matches_with(&text(path.as_os_str().as_bytes()), OPTIONS)
    }

    /// The pattern as given.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The pattern for a message.
    pub fn shown(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.raw)
    }
}

/// `bytes` as matchable text.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for &b in chunk.invalid() {
            out.extend(char::from_u32(BASE + u32::from(b)));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn path(bytes: &[u8]) -> &Path {
        Path::new(OsStr::from_bytes(bytes))
    }

    #[test]
    fn raw_bytes_match_as_bytes() {
        let star = Glob::new(b"out/*").unwrap();
        assert!(star.matches(path(b"out/\xff.bin")));
        assert!(!star.matches(path(b"out/a/\xff.bin")));
        let raw = Glob::new(b"g/*\xff.bin").unwrap();
        assert!(raw.matches(path(b"g/a\xff.bin")));
        assert!(!raw.matches(path(b"g/a\xfe.bin")));
        assert!(!raw.matches(path("g/a\u{fffd}.bin".as_bytes())));
        let one = Glob::new(b"x?y").unwrap();
        assert!(one.matches(path(b"x\xffy")));
        assert!(!one.matches(path(b"x\xff\xfey")));
        assert_eq!(raw.raw(), b"g/*\xff.bin");
    }
}
