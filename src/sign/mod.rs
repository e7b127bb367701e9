//! Signed entries: the Ed25519 key this process signs what it stores with
//! (`CACHIER_SIGNING_KEY` or config `signing_key_file`), the public keys it
//! trusts (`CACHIER_TRUSTED_KEYS`, plus its own), and checking an entry's
//! seal. The seal covers the canonical CBOR of the whole metadata without
//! the seal: the key, argv, exit code, creation time and the BLAKE3 of
//! every stored byte. No key is ever printed; errors name the variable or
//! file, never the value.
//!
//! A key text is the private seed (64 hex digits) or, as `cachier keygen`
//! writes it, the seed and its public key (128 hex digits, libsodium's
//! secret-key layout). Deriving the public key from the seed costs a scalar
//! multiplication (about half a hit's own instructions), so with the
//! public half stated a hit never derives: the signing key is built on the
//! first signature (a miss), which checks the stated half first.
use std::cell::OnceCell;
use std::path::Path;

use anyhow::Result;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::entry::Meta;
use crate::error::Exit;

mod verified;

/// The private key that signs new entries: its seed (64 hex digits), or
/// the seed and its public key (128 hex digits).
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
    signer: Option<OwnKey>,
    /// Public keys whose seals are served: `CACHIER_TRUSTED_KEYS` (with the
    /// point that checking them decoded, so a hit does not decode it again),
    /// then our own.
    trusted: Vec<([u8; 32], Option<VerifyingKey>)>,
}

/// The key this process signs with, as its text gave it.
struct OwnKey {
    seed: Zeroizing<[u8; 32]>,
    /// The public key: stated beside the seed, or derived from it.
    public: [u8; 32],
    /// Built on the first signature; with the public key stated, only
    /// once the stated half has been checked against the seed.
    key: OnceCell<SigningKey>,
    /// Where the key came from (`CACHIER_SIGNING_KEY` or the file), for errors.
    source: String,
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
            (Some(text), _) => {
                Some(OwnKey::parse(&text, SIGNING_VAR.to_string()).map_err(|e| {
                    Exit::usage(format!(
                        "{SIGNING_VAR}: {e} (make a key with `cachier keygen`)"
                    ))
                })?)
            }
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
                trusted.push((key.to_bytes(), Some(key)));
            }
        }
        if let Some(own) = &signer {
            trusted.push((own.public, None));
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

    /// Check that the signing key can sign (its stated public half is its
    /// seed's), before work whose result it is to seal: a run's miss, an
    /// import that signs. Without a signing key, nothing to check.
    pub fn ready(&self) -> Result<()> {
        match &self.signer {
            Some(signer) => signer.key().map(drop),
            None => Ok(()),
        }
    }

    /// Seal `meta` with the signing key (replacing any seal); without a
    /// signing key, leave it as it is. Fails only as [`Trust::ready`] does.
    pub fn sign(&self, meta: &mut Meta) -> Result<()> {
        if let Some(signer) = &self.signer {
            let signature = signer.key()?.sign(&signed_bytes(meta));
            meta.seal = Some(Seal {
                public: signer.public,
                signature: signature.to_bytes(),
            });
        }
        Ok(())
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
        let Some((_, point)) = self.trusted.iter().find(|(k, _)| k == &seal.public) else {
            return Err(untrusted("signed by a key not in CACHIER_TRUSTED_KEYS"));
        };
        // Verified once by this user: the same signed bytes, key and
        // signature are valid again (see `verified`).
        let signed = signed_bytes(meta);
        let digest = verified::Digest::of(&seal.public, &seal.signature, &signed);
        if verified::known(&digest) {
            return Ok(());
        }
        let key = point.or_else(|| VerifyingKey::from_bytes(&seal.public).ok());
        if !key.is_some_and(|key| verifies(&key, &signed, seal)) {
            return Err(untrusted("badly signed (its signature does not match it)"));
        }
        verified::remember(&digest);
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
    verifies(&key, &signed_bytes(meta), seal)
}

/// Whether `seal`'s signature is `key`'s over `meta`. Strict: a signature
/// or key of small order is refused (this costs one point decoding, ~10%).
fn verifies(key: &VerifyingKey, signed: &[u8], seal: &Seal) -> bool {
    key.verify_strict(signed, &Signature::from_bytes(&seal.signature))
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

impl OwnKey {
    /// A key text: the seed, or the seed and its public key. Only the
    /// seed alone costs a derivation here.
    fn parse(text: &str, source: String) -> Result<OwnKey, &'static str> {
        let text = text.trim();
        let stated = match text.len() {
            64 => false,
            128 => true,
            _ => return Err(NOT_HEX),
        };
        let mut bytes = Zeroizing::new([0u8; 64]);
        hex::decode_to_slice(text, &mut bytes[..text.len() / 2]).map_err(|_| NOT_HEX)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[..32]);
        let mut public = [0u8; 32];
        let key = OnceCell::new();
        if stated {
            public.copy_from_slice(&bytes[32..]);
        } else {
            let derived = SigningKey::from_bytes(&seed);
            public = derived.verifying_key().to_bytes();
            let _ = key.set(derived);
        }
        Ok(OwnKey {
            seed,
            public,
            key,
            source,
        })
    }

    /// The signing key, built once. A stated public half that is not the
    /// seed's is refused: its seals would name a key that did not make them.
    fn key(&self) -> Result<&SigningKey> {
        if let Some(key) = self.key.get() {
            return Ok(key);
        }
        let key = SigningKey::from_bytes(&self.seed);
        if key.verifying_key().as_bytes() != &self.public {
            return Err(Exit::usage(format!(
                "{}: its last 64 hex digits are not the public key of its first 64 \
                 (a damaged key: make a new one with `cachier keygen`)",
                self.source
            )));
        }
        Ok(self.key.get_or_init(|| key))
    }
}

const NOT_HEX: &str = "is not 64 or 128 hex digits";

fn parse_public(text: &str) -> Result<VerifyingKey, &'static str> {
    VerifyingKey::from_bytes(&hex32(text)?).map_err(|_| "is not an Ed25519 public key")
}

/// 64 hex digits as 32 bytes; the error never quotes the text (it may be a secret).
fn hex32(text: &str) -> Result<[u8; 32], &'static str> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| "is not 64 hex digits")?;
    Ok(out)
}

/// The key in `path`, which only its owner may read or write.
fn read_key_file(path: &Path) -> Result<OwnKey> {
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
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?,
    );
    OwnKey::parse(&text, format!("signing_key_file {shown}"))
        .map_err(|e| fail(format!("{e} (make a key with `cachier keygen`)")))
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    fn trust(seed: u8) -> Trust {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let text = hex::encode(key.to_keypair_bytes());
        let signer = OwnKey::parse(&text, SIGNING_VAR.into()).unwrap();
        Trust {
            trusted: vec![(signer.public, None)],
            signer: Some(signer),
        }
    }

    #[test]
    fn a_seal_covers_every_field() {
        let signer = trust(7);
        let mut meta = Meta::blank(Key([1; 32]));
        assert!(signer.check(&meta).is_err());
        signer.sign(&mut meta).unwrap();
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

    #[test]
    fn a_key_text_states_its_public_half_or_derives_it() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = key.verifying_key().to_bytes();
        let pair = hex::encode(key.to_keypair_bytes());
        let seed = OwnKey::parse(&pair[..64], "seed".into()).unwrap();
        assert_eq!(seed.public, public);
        let stated = OwnKey::parse(&format!(" {pair}\n"), "pair".into()).unwrap();
        assert_eq!(stated.public, public);
        assert!(stated.key.get().is_none(), "derived before signing");
        assert!(stated.key().is_ok());
        let other = hex::encode(SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes());
        let wrong = OwnKey::parse(&format!("{}{other}", &pair[..64]), "X".into()).unwrap();
        let said = wrong.key().unwrap_err().to_string();
        assert!(said.starts_with("X: its last 64 hex digits") && !said.contains(&pair[..16]));
        for bad in [&pair[..63], &pair[..96], &format!("{}zz", &pair[..126])] {
            assert_eq!(OwnKey::parse(bad, "X".into()).err(), Some(NOT_HEX));
        }
    }
}
