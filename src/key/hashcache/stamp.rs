//! A shard's 80-byte record: a file's stamp (see `crate::stamp`) and the
//! BLAKE3 of its content.
pub use crate::stamp::Stamp;

pub(super) fn encode(stamp: &Stamp, hash: &[u8; 32], out: &mut Vec<u8>) {
    stamp.encode(out);
    out.extend_from_slice(hash);
}

pub(super) fn decode(b: &[u8]) -> (Stamp, [u8; 32]) {
    let hash = b
        .get(Stamp::LEN..Stamp::LEN + 32)
        .and_then(|s| s.try_into().ok());
    (Stamp::decode(b), hash.unwrap_or([0; 32]))
}
