//! Export streams with their checksums made right, so that a fuzzer's
//! mutations get past them to the metadata and the output they guard.
use crate::dump::MAGIC;
use crate::entry::Meta;

/// `data` with each record's checksums, output hashes and end count
/// recomputed; bytes that are no record are kept as they are.
pub fn reseal(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    let mut entries = 0u64;
    while let Some((&tag, tail)) = rest.split_first() {
        if rest.starts_with(MAGIC) {
            let header = rest.len().min(MAGIC.len() + 1);
            out.extend_from_slice(&rest[..header]);
            rest = &rest[header..];
            entries = 0;
            continue;
        }
        let record_start = out.len();
        match tag {
            b'E' if tail.len() >= 4 => {
                // The metadata ends where its CBOR does, whatever the length
                // says: a mutation may have made it longer or shorter.
                let mut cbor = &tail[4..];
                let Ok(mut meta) = ciborium::from_reader::<Meta, _>(&mut cbor) else {
                    let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
                    let meta_bytes = &tail[4..][..len.min(tail.len() - 4)];
                    seal(&mut out, record_start, tag, meta_bytes);
                    rest = skip(&tail[4 + meta_bytes.len()..], 32);
                    continue;
                };
                let after = skip(cbor, 32);
                let (stdout, after) = split(after, meta.stdout_len);
                let (stderr, after) = split(after, meta.stderr_len);
                meta.stdout_blake3 = *blake3::hash(stdout).as_bytes();
                meta.stderr_blake3 = *blake3::hash(stderr).as_bytes();
                let mut encoded = Vec::new();
                if ciborium::into_writer(&meta, &mut encoded).is_err() {
                    return out;
                }
                seal(&mut out, record_start, tag, &encoded);
                out.extend_from_slice(stdout);
                out.extend_from_slice(stderr);
                entries += 1;
                rest = after;
            }
            b'Z' if tail.len() >= 8 => {
                out.push(tag);
                out.extend_from_slice(&entries.to_le_bytes());
                let check = blake3::hash(&out[record_start..]);
                out.extend_from_slice(check.as_bytes());
                rest = skip(&tail[8..], 32);
            }
            _ => {
                out.extend_from_slice(rest);
                break;
            }
        }
    }
    out
}

/// Append an entry record's head (`tag`, length, metadata) and its checksum.
fn seal(out: &mut Vec<u8>, start: usize, tag: u8, meta: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(meta);
    let check = blake3::hash(&out[start..]);
    out.extend_from_slice(check.as_bytes());
}

fn skip(bytes: &[u8], n: usize) -> &[u8] {
    &bytes[n.min(bytes.len())..]
}

fn split(bytes: &[u8], n: u64) -> (&[u8], &[u8]) {
    bytes.split_at(usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len()))
}
