//! Choosing entries by key prefix, shared by `show` and `clear --key`.
use anyhow::Result;

use crate::error::Exit;
use crate::store::Listed;

/// Entries whose key starts with `prefix` (8 to 64 hex digits). More than
/// one match is an error listing them: a prefix must name one entry.
pub fn by_prefix(entries: &[Listed], prefix: &str) -> Result<Option<Listed>> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.len() < 8 || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Exit::usage(format!(
            "`{prefix}` is not a key prefix: give 8 to 64 hex digits (see `cachier ls`)"
        )));
    }
    let mut found: Vec<&Listed> = entries
        .iter()
        .filter(|l| l.meta.key.hex().starts_with(&prefix))
        .collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop().cloned()),
        _ => {
            let keys: Vec<String> = found
                .iter()
                .map(|l| l.meta.key.hex()[..16].to_string())
                .collect();
            Err(Exit::usage(format!(
                "key prefix `{prefix}` is ambiguous: it matches {}; give more digits",
                keys.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::entry::Meta;
    use crate::key::Key;

    fn listed(first: u8, second: u8) -> Listed {
        let mut key = [0u8; 32];
        key[..5].copy_from_slice(&[0xab, 0xcd, 0xef, first, second]);
        let meta = Meta::blank(Key(key));
        Listed {
            meta,
            size: 0,
            last_used: SystemTime::UNIX_EPOCH,
            hits: 0,
        }
    }

    #[test]
    fn a_prefix_names_one_entry_or_is_an_error() {
        let entries = [listed(0x01, 0x10), listed(0x01, 0x20), listed(0x02, 0x00)];
        let one = by_prefix(&entries, "ABCDEF0110").unwrap().unwrap();
        assert_eq!(one.meta.key.hex()[..10], *"abcdef0110");
        assert!(by_prefix(&entries, "abcdef03").unwrap().is_none());
        let err = by_prefix(&entries, "abcdef01").unwrap_err();
        assert_eq!(crate::error::code_of(&err), crate::error::USAGE);
        assert!(
            err.to_string()
                .contains("abcdef0110000000, abcdef0120000000"),
            "{err}"
        );
        for bad in ["abc", "zzzzzzzz"] {
            assert_eq!(
                crate::error::code_of(&by_prefix(&entries, bad).unwrap_err()),
                crate::error::USAGE
            );
        }
    }
}
