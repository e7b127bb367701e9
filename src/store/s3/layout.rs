//! Object names under the prefix, and the head of an entry object: magic,
//! creation time and the CBOR metadata, before the body.
use crate::entry::{Corrupt, Meta};
use crate::key::Key;

/// What every entry object starts with (the last byte is the format).
pub const MAGIC: &[u8; 8] = b"CACHIER\x01";
/// Bytes before the metadata: magic, created ms (u64 BE), meta length (u32 BE).
pub const HEAD: usize = 8 + 8 + 4;
/// Metadata longer than this is corrupt (argv and components are small).
const META_MAX: u32 = 16 << 20;

/// Names of one store's objects.
#[derive(Clone)]
pub struct Names {
    pub prefix: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Names {
    pub fn entry(&self, key: &Key) -> String {
        format!("{}e/{}", self.prefix, hex(&key.0))
    }
    pub fn entries(&self) -> String {
        format!("{}e/", self.prefix)
    }
    pub fn index(&self, namespace: &str, key: &Key) -> String {
        format!("{}{}", self.indexes(Some(namespace)), hex(&key.0))
    }
    /// Where index objects are: all, or one namespace's.
    pub fn indexes(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) => format!("{}n/{}/", self.prefix, hex(ns.as_bytes())),
            None => format!("{}n/", self.prefix),
        }
    }
    pub fn claim(&self, key: &Key) -> String {
        format!("{}claim/{}", self.prefix, hex(&key.0))
    }
    pub fn claims(&self) -> String {
        format!("{}claim/", self.prefix)
    }
    pub fn total(&self) -> String {
        format!("{}counts/total", self.prefix)
    }
    pub fn deltas(&self) -> String {
        format!("{}counts/d/", self.prefix)
    }
    pub fn mark(&self, what: &str) -> String {
        format!("{}mark/{}", self.prefix, hex(what.as_bytes()))
    }
    pub fn probe(&self, token: u64) -> String {
        format!("{}probe/{token:016x}", self.prefix)
    }

    /// The key of an entry object's name.
    pub fn key_of(&self, name: &str) -> Option<Key> {
        let hexed = name.rsplit('/').next()?;
        let bytes: [u8; 32] = unhex(hexed)?.try_into().ok()?;
        Some(Key(bytes))
    }

    /// The namespace and key of an index object's name.
    pub fn index_of(&self, name: &str) -> Option<(String, Key)> {
        let rest = name.strip_prefix(&self.indexes(None))?;
        let (ns, key) = rest.split_once('/')?;
        let ns = String::from_utf8(unhex(ns)?).ok()?;
        Some((ns, self.key_of(key)?))
    }
}

/// The head of an entry object for `meta`: magic, created, meta.
pub fn head(meta: &Meta) -> anyhow::Result<Vec<u8>> {
    let mut cbor = Vec::new();
    ciborium::into_writer(meta, &mut cbor)?;
    let mut out = Vec::with_capacity(HEAD + cbor.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&meta.created_ms.to_be_bytes());
    out.extend_from_slice(&(cbor.len() as u32).to_be_bytes());
    out.extend_from_slice(&cbor);
    Ok(out)
}

/// How long the head is, from its first [`HEAD`] bytes.
pub fn head_len(key: &Key, start: &[u8]) -> Result<usize, Corrupt> {
    let bad = |why: &str| Corrupt {
        key: key.short(),
        why: why.into(),
    };
    if start.len() < HEAD || &start[..8] != MAGIC {
        return Err(bad("not an entry of this format"));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&start[16..20]);
    let len = u32::from_be_bytes(len);
    if len > META_MAX {
        return Err(bad("metadata too long"));
    }
    Ok(HEAD + len as usize)
}

/// The metadata of a whole head (a newer format's is its own error: see
/// `version.rs`).
pub fn decode(key: &Key, head: &[u8]) -> anyhow::Result<Meta> {
    let end = head_len(key, head)?;
    let cbor = head.get(HEAD..end).ok_or_else(|| Corrupt {
        key: key.short(),
        why: "truncated metadata".into(),
    })?;
    let mut created = [0u8; 8];
    created.copy_from_slice(&head[8..16]);
    Meta::decode_at(cbor, key, u64::from_be_bytes(created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let names = Names {
            prefix: "p/".into(),
        };
        let key = Key([7; 32]);
        assert_eq!(names.key_of(&names.entry(&key)), Some(key));
        assert_eq!(
            names.index_of(&names.index("ns x", &key)),
            Some(("ns x".into(), key))
        );
        assert_eq!(names.key_of("p/e/zz"), None);
    }

    #[test]
    fn heads_round_trip() {
        let key = Key([9; 32]);
        let mut meta = Meta::blank(key);
        meta.created_ms = 1234;
        let head = head(&meta).unwrap();
        assert_eq!(head_len(&key, &head).unwrap(), head.len());
        assert_eq!(decode(&key, &head).unwrap().created_ms, 1234);
        assert!(decode(&key, &head[..head.len() - 1]).is_err());
        assert!(head_len(&key, b"nope").is_err());
    }
}
