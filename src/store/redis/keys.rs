//! The names of the store's Redis keys. Every key of one entry shares the
//! hash tag `{<prefix>:<key hex>}`, so the entry lives in one cluster slot
//! and one Lua script can publish or remove it whole.
use crate::key::Key;

/// Checks a `redis_prefix` value.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("redis_prefix is empty; use e.g. cachier".into());
    }
    if prefix
        .chars()
        .any(|c| c == '{' || c == '}' || c.is_whitespace())
    {
        return Err(format!(
            "redis_prefix `{prefix}` may not hold `{{`, `}}` or white space"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
        }
    }

    fn tag(&self, key: &Key) -> String {
        format!("{{{}:{}}}", self.prefix, key.hex())
    }

    /// The entry's metadata hash.
    pub fn meta(&self, key: &Key) -> String {
        format!("{}:m", self.tag(key))
    }

    /// What chunk keys start with; a chunk is `<base><generation>:<n>`.
    pub fn chunk_base(&self, key: &Key) -> String {
        format!("{}:c:", self.tag(key))
    }

    pub fn chunk(&self, key: &Key, generation: &str, n: u64) -> String {
        format!("{}{generation}:{n}", self.chunk_base(key))
    }

    /// The single-flight claim: its value is the owner's token.
    pub fn claim(&self, key: &Key) -> String {
        format!("{}:claim", self.tag(key))
    }

    /// Where a released claim is announced.
    pub fn channel(&self, key: &Key) -> String {
        format!("{}:done:{}", self.prefix, key.hex())
    }

    /// The counters of every namespace, one hash.
    pub fn counters(&self) -> String {
        format!("{{{}}}:counters", self.prefix)
    }

    /// A background-work rate limit.
    pub fn mark(&self, what: &str) -> String {
        format!("{{{}}}:mark:{what}", self.prefix)
    }

    /// SCAN pattern of every entry's metadata hash.
    pub fn meta_pattern(&self) -> String {
        format!("{{{}:*}}:m", glob_escape(&self.prefix))
    }

    /// SCAN pattern of every claim.
    pub fn claim_pattern(&self) -> String {
        format!("{{{}:*}}:claim", glob_escape(&self.prefix))
    }

    /// The entry key a metadata hash name holds.
    pub fn key_of_meta(&self, name: &[u8]) -> Option<Key> {
        let name = std::str::from_utf8(name).ok()?;
        let hex = name
            .strip_prefix('{')?
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(':')?
            .strip_suffix("}:m")?;
        parse_hex(hex).map(Key)
    }
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_prefixes_are_checked() {
        let names = Names::new("t1");
        let key = Key([7u8; 32]);
        assert_eq!(names.key_of_meta(names.meta(&key).as_bytes()), Some(key));
        assert_eq!(
            Names::new("t").key_of_meta(names.meta(&key).as_bytes()),
            None
        );
        assert!(check_prefix("a{b").is_err());
        assert!(check_prefix("a b").is_err());
        assert!(check_prefix("cachier").is_ok());
        assert_eq!(Names::new("a*").meta_pattern(), "{a\\*:*}:m");
    }
}
