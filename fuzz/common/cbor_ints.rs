//! A mutator for the targets whose input holds CBOR: one time in four it
//! replaces one CBOR unsigned integer with an extreme value, which byte
//! flips seldom make (a length near 2^64 needs a 9-byte head where there
//! was one byte), and fixes the length that frames the CBOR; otherwise it
//! leaves the input to libFuzzer's own mutations.
// Each target uses one kind of frame.
#![allow(dead_code)]

/// What holds the length of the CBOR, to keep it right after a mutation.
#[derive(Clone, Copy)]
pub enum Frame {
    /// Nothing, or a reader that finds the end of the CBOR itself.
    None,
    /// Memory daemon frames: a big-endian u32 length before each message.
    U32Be,
    /// An entry file after a 32-byte key: `[output][meta][len: u32 LE][magic: 8]`.
    EntryFile,
}

const EXTREMES: [u64; 8] = [
    0,
    1,
    0xff,
    u32::MAX as u64,
    1 << 53,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

pub fn mutate(data: &mut [u8], size: usize, max_size: usize, seed: u32, frame: Frame) -> usize {
    let mut rng = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    if next() % 4 != 0 {
        return libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    }
    let heads: Vec<(usize, usize)> = (0..size)
        .filter_map(|i| head_len(data[i]).map(|n| (i, n)))
        .filter(|&(i, n)| i + n <= size)
        .collect();
    if heads.is_empty() {
        return libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    }
    let (at, old) = heads[(next() % heads.len() as u64) as usize];
    let new = encode_uint(EXTREMES[(next() % EXTREMES.len() as u64) as usize]);
    let new_size = size - old + new.len();
    if new_size > max_size {
        return libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    }
    data.copy_within(at + old..size, at + new.len());
    data[at..at + new.len()].copy_from_slice(&new);
    let grown = new.len() as i64 - old as i64;
    refit(&mut data[..new_size], at, grown, frame);
    new_size
}

/// The length of the CBOR unsigned integer whose head is `b`.
fn head_len(b: u8) -> Option<usize> {
    match b {
        0x00..=0x17 => Some(1),
        0x18 => Some(2),
        0x19 => Some(3),
        0x1a => Some(5),
        0x1b => Some(9),
        _ => None,
    }
}

fn encode_uint(v: u64) -> Vec<u8> {
    match v {
        0..=0x17 => vec![v as u8],
        0x18..=0xff => vec![0x18, v as u8],
        0x100..=0xffff => [&[0x19][..], &(v as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[0x1a][..], &(v as u32).to_be_bytes()].concat(),
        _ => [&[0x1b][..], &v.to_be_bytes()].concat(),
    }
}

/// Add `grown` to the length that frames the byte at `at`.
fn refit(data: &mut [u8], at: usize, grown: i64, frame: Frame) {
    let add = |len: u32| (i64::from(len) + grown).clamp(0, u32::MAX.into()) as u32;
    match frame {
        Frame::None => {}
        Frame::U32Be => {
            let mut pos = 0;
            while pos + 4 <= data.len() {
                let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap());
                let end = pos + 4 + len as usize;
                if at >= pos + 4 && (at as i64) < end as i64 + grown {
                    data[pos..pos + 4].copy_from_slice(&add(len).to_be_bytes());
                    return;
                }
                pos = end;
            }
        }
        Frame::EntryFile => {
            let Some(tail) = data.len().checked_sub(12) else {
                return;
            };
            if data[data.len() - 8..] != *b"cachier\x01" {
                return;
            }
            let len = u32::from_le_bytes(data[tail..tail + 4].try_into().unwrap());
            let meta_start = tail as i64 - grown - i64::from(len);
            if (at as i64) >= meta_start && at < tail {
                data[tail..tail + 4].copy_from_slice(&add(len).to_le_bytes());
            }
        }
    }
}
