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
