//! Signed entries: the Ed25519 key this process signs what it stores with
//! (`CACHIER_SIGNING_KEY` or config `signing_key_file`), the public keys it
//! trusts (`CACHIER_TRUSTED_KEYS`, plus its own), and checking an entry's
//! seal. The seal covers the canonical CBOR of the whole metadata without
//! the seal: the key, argv, exit code, creation time and the BLAKE3 of
//! every stored byte. No key is ever printed; errors name the variable or
//! file, never the value.
use std::path::Path;

use anyhow::Result;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::entry::Meta;
use crate::error::Exit;

/// The private seed (64 hex digits) of the key that signs new entries.
pub const SIGNING_VAR: &str = "CACHIER_SIGNING_KEY";
/// Comma-separated public keys (64 hex digits each) whose entries are served.
pub const TRUSTED_VAR: &str = "CACHIER_TRUSTED_KEYS";
/// Signed before the metadata, so a seal means nothing in another context.
const DOMAIN: &[u8] = b"cachier entry seal v1\0";

/// Who signed an entry, and the signature over its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    #[serde(with = "serde_bytes")]
    pub public: [u8; 32],
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// The signing key and trusted keys of this invocation. With none set,
/// nothing is signed and every entry is served, as before signing existed.
#[derive(Default)]
pub struct Trust {
    signer: Option<SigningKey>,
    trusted: Vec<VerifyingKey>,
}

/// Why an entry is not served under a trust policy.
#[derive(Debug, thiserror::Error)]
#[error("cache entry {key} is {why}")]
pub struct Untrusted {
    pub key: String,
    pub why: &'static str,
}

impl Trust {
    /// From `CACHIER_SIGNING_KEY` (else `key_file`) and `CACHIER_TRUSTED_KEYS`.
    pub fn load(key_file: Option<&Path>) -> Result<Trust> {
        let signer = match (var(SIGNING_VAR), key_file) {
            (Some(seed), _) => Some(parse_seed(&seed).map_err(|e| {
                Exit::usage(format!(
                    "{SIGNING_VAR}: {e} (make a key with `cachier keygen`)"
                ))
            })?),
            (None, Some(path)) => Some(read_key_file(path)?),
            (None, None) => None,
        };
        let mut trusted = Vec::new();
        if let Some(list) = var(TRUSTED_VAR) {
            for (n, item) in list.split(',').map(str::trim).enumerate() {
                if item.is_empty() {
                    continue;
                }
                let key = parse_public(item).map_err(|e| {
                    Exit::usage(format!(
                        "{TRUSTED_VAR}: key {} {e} (list the public keys `cachier keygen` printed, comma-separated)",
                        n + 1
                    ))
                })?;
                trusted.push(key);
            }
        }
        if let Some(own) = &signer {
            trusted.push(own.verifying_key());
        }
        Ok(Trust { signer, trusted })
    }

    /// Whether only entries sealed by a trusted key are served: a signing
    /// key or trusted keys are set.
    pub fn enforcing(&self) -> bool {
        !self.trusted.is_empty()
    }

    pub fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    /// Seal `meta` with the signing key (replacing any seal); without a
    /// signing key, leave it as it is.
    pub fn sign(&self, meta: &mut Meta) {
        if let Some(signer) = &self.signer {
            let signature = signer.sign(&signed_bytes(meta));
            meta.seal = Some(Seal {
                public: signer.verifying_key().to_bytes(),
                signature: signature.to_bytes(),
            });
        }
    }

    /// Whether `meta` may be served: always when not enforcing, else only
    /// with a valid seal by a trusted key.
    pub fn check(&self, meta: &Meta) -> Result<(), Untrusted> {
        if !self.enforcing() {
            return Ok(());
        }
        let untrusted = |why| Untrusted {
            key: meta.key.short(),
            why,
        };
        let seal = meta.seal.as_ref().ok_or_else(|| untrusted("not signed"))?;
        if !self.trusted.iter().any(|k| k.as_bytes() == &seal.public) {
            return Err(untrusted("signed by a key not in CACHIER_TRUSTED_KEYS"));
        }
        if !seal_valid(meta) {
            return Err(untrusted("badly signed (its signature does not match it)"));
        }
        Ok(())
    }
}

/// Whether `meta` carries a seal whose signature matches it (by any key).
pub fn seal_valid(meta: &Meta) -> bool {
    let Some(seal) = &meta.seal else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&seal.public) else {
        return false;
    };
    key.verify_strict(&signed_bytes(meta), &Signature::from_bytes(&seal.signature))
        .is_ok()
}

/// Who signed an entry, for people: `ed25519:` and the public key's first
/// 16 hex digits (enough to tell keys apart, and to find it in a list).
pub fn fingerprint(public: &[u8; 32]) -> String {
    format!("ed25519:{}", hex::encode(&public[..8]))
}

/// A valid seal's fingerprint; `None` for an unsigned or badly signed entry.
pub fn signed_by(meta: &Meta) -> Option<String> {
    meta.seal
        .as_ref()
        .filter(|_| seal_valid(meta))
        .map(|s| fingerprint(&s.public))
}

/// What the seal covers: the domain, then the metadata's CBOR without its seal.
fn signed_bytes(meta: &Meta) -> Vec<u8> {
    let unsealed = Meta {
        seal: None,
        encoding: crate::entry::Encoding::Raw,
        ..meta.clone()
    };
    let mut bytes = DOMAIN.to_vec();
    // Writing into a Vec cannot fail, and Meta always serializes.
    let _ = ciborium::into_writer(&unsealed, &mut bytes);
    bytes
}

/// A new key pair's private seed, from the operating system's generator.
pub fn generate() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| Exit::failed(format!("cannot get random bytes for a key: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn parse_seed(text: &str) -> Result<SigningKey, &'static str> {
    hex32(text).map(|seed| SigningKey::from_bytes(&seed))
}

fn parse_public(text: &str) -> Result<VerifyingKey, &'static str> {
    VerifyingKey::from_bytes(&hex32(text)?).map_err(|_| "is not an Ed25519 public key")
}

/// 64 hex digits as 32 bytes; the error never quotes the text (it may be a secret).
fn hex32(text: &str) -> Result<[u8; 32], &'static str> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| "is not 64 hex digits")?;
    Ok(out)
}

/// The seed in `path`, which only its owner may read or write.
fn read_key_file(path: &Path) -> Result<SigningKey> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let fail = |what: String| Exit::usage(format!("signing_key_file {shown}: {what}"));
    let stat = std::fs::metadata(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let mode = stat.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "others may read or write it (mode {mode:03o}); run chmod 600 on it"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    parse_seed(&text).map_err(|e| fail(format!("{e} (make a key with `cachier keygen`)")))
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    fn trust(seed: u8) -> Trust {
        let signer = SigningKey::from_bytes(&[seed; 32]);
        Trust {
            trusted: vec![signer.verifying_key()],
            signer: Some(signer),
        }
    }

    #[test]
    fn a_seal_covers_every_field() {
        let signer = trust(7);
        let mut meta = Meta::blank(Key([1; 32]));
        assert!(signer.check(&meta).is_err());
        signer.sign(&mut meta);
        assert!(signer.check(&meta).is_ok());
        let mut redated = meta.clone();
        redated.created_ms += 1;
        assert!(signer.check(&redated).is_err());
        let mut other = meta.clone();
        other.stdout_blake3[0] ^= 1;
        assert!(signer.check(&other).is_err());
        assert!(trust(8).check(&meta).is_err());
        assert!(Trust::default().check(&other).is_ok());
    }
}
