//! Entry format versions (SPEC §1.9): the version every entry records, and
//! the error for an entry a newer cachier wrote, which is skipped and kept.
use serde::Deserialize;

/// The entry format this cachier writes and reads (body encoding,
/// compression, signature scheme). An entry of a higher version is left
/// alone: a miss, never deleted (SPEC §1.9).
/// 1: the body is stdout then stderr.
/// 2: an `--output` archive may follow stderr (`Meta::outputs`); a reader
///    of version 1 would replay such an entry without its files.
pub const FORMAT: u32 = 2;

/// The version of entries from before versions were recorded.
pub fn first() -> u32 {
    1
}

/// Version 1 is not written out: such entries keep their old bytes.
pub fn is_first(format: &u32) -> bool {
    *format == 1
}

/// Just the version of stored metadata, readable whatever else changed.
#[derive(Deserialize)]
struct Versioned {
    #[serde(default = "first")]
    format: u32,
}

/// The format version recorded in stored metadata, whatever else in it
/// changed; `None` if it is no metadata at all.
pub fn of(bytes: &[u8]) -> Option<u32> {
    ciborium::from_reader::<Versioned, _>(bytes)
        .ok()
        .map(|v| v.format)
}

/// The entry was written by a newer cachier, in a format this one does not
/// know: skip it (a miss) and never delete or overwrite it, so a fleet
/// halfway through an upgrade keeps its entries.
#[derive(Debug, thiserror::Error)]
#[error(
    "cache entry {key} has format version {format}, newer than this cachier's {FORMAT}; \
     left it in place (upgrade cachier to use it)"
)]
pub struct NewerFormat {
    pub key: String,
    pub format: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Meta;
    use crate::key::Key;

    /// A newer format is told apart from corruption, whether its fields
    /// still decode or not.
    #[test]
    fn newer_formats_are_not_corrupt() {
        let key = Key([1; 32]);
        let mut bytes = Vec::new();
        let newer = Meta {
            format: FORMAT + 1,
            ..Meta::blank(key)
        };
        ciborium::into_writer(&newer, &mut bytes).unwrap();
        let err = Meta::decode(&bytes, &key).unwrap_err();
        assert_eq!(err.downcast::<NewerFormat>().unwrap().format, FORMAT + 1);
        let mut bytes = Vec::new();
        let alien = ciborium::Value::Map(vec![("format".into(), 7.into())]);
        ciborium::into_writer(&alien, &mut bytes).unwrap();
        let err = Meta::decode(&bytes, &key).unwrap_err();
        assert_eq!(err.downcast::<NewerFormat>().unwrap().format, 7);
        let mut bytes = Vec::new();
        ciborium::into_writer(&Meta::blank(key), &mut bytes).unwrap();
        assert_eq!(Meta::decode(&bytes, &key).unwrap().format, FORMAT);
    }
}
