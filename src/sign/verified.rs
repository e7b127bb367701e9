//! Seals this user has already verified, so a signed hit checks its Ed25519
//! signature once per entry rather than on every hit (a verification is most
//! of a signed hit's cost).
//!
//! A record is 16 bytes of a BLAKE3 over the exact signed bytes, the public
//! key and the signature, kept in the slot two other bytes of it name, in a
//! fixed table of 65,536 slots (1 MiB at most, sparse) under the user's own
//! cache dir (`~/.cache/cachier/seals`, 0600 in 0700), never in a shared
//! store. Only a verification that passed writes one, so an altered or
//! forged entry never matches one; a collision only overwrites (costing a
//! verification later). A table or directory that another user could have
//! written is ignored, and a missing or damaged one means verifying again.
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::store::kit::{make_dir, open_private};

/// 16-byte slots, one for each value of a digest's first two bytes.
const SLOT: usize = 16;

/// What names one verified seal.
pub struct Digest([u8; 32]);

impl Digest {
    pub fn of(public: &[u8; 32], signature: &[u8; 64], signed: &[u8]) -> Digest {
        let mut hasher = blake3::Hasher::new_derive_key("cachier verified seal v1");
        hasher.update(public);
        hasher.update(signature);
        hasher.update(signed);
        Digest(*hasher.finalize().as_bytes())
    }

    fn at(&self) -> u64 {
        u64::from(u16::from_le_bytes([self.0[0], self.0[1]])) * SLOT as u64
    }

    fn check(&self) -> &[u8] {
        &self.0[32 - SLOT..]
    }
}

/// `~/.cache/cachier/seals` (honouring `XDG_CACHE_HOME`).
fn table() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.cache_dir().join("cachier").join("seals"))
}

/// Whether this seal was verified before (by this user, on this machine).
pub fn known(digest: &Digest) -> bool {
    let Some(path) = table() else { return false };
    let Ok(file) = File::open(&path) else {
        return false;
    };
    let mut slot = [0u8; SLOT];
    crate::private::ours(&file, &path)
        && file.read_exact_at(&mut slot, digest.at()).is_ok()
        && slot == digest.check()
}

/// Record a seal that has just been verified. Failures are ignored: the
/// table only saves work.
pub fn remember(digest: &Digest) {
    let Some(path) = table() else { return };
    if let Some(dir) = path.parent() {
        let _ = make_dir(dir);
    }
    let Ok(file) = open_private(&path) else {
        return;
    };
    if crate::private::ours(&file, &path) {
        let _ = file.write_all_at(digest.check(), digest.at());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_covers_every_part() {
        let base = Digest::of(&[1; 32], &[2; 64], b"meta");
        for other in [
            Digest::of(&[9; 32], &[2; 64], b"meta"),
            Digest::of(&[1; 32], &[9; 64], b"meta"),
            Digest::of(&[1; 32], &[2; 64], b"metb"),
        ] {
            assert_ne!(base.0, other.0);
        }
        assert!(base.at() < (1 << 16) * SLOT as u64);
    }
}
