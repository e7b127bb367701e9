//! An external sort for listings too big to hold: records (a byte key and
//! a payload) are kept in memory up to a budget, and beyond it written out
//! as sorted runs to one unlinked temp file, merged back in key order.
//! Stable: records of equal keys come back in the order they were pushed
//! (with an empty key, simply in that order).
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;

use anyhow::Result;

/// Bytes of records held in memory before a run is spilled.
const BUDGET: usize = 8 << 20;

pub struct Sorter {
    /// Records as `[key len: u32][payload len: u32][key][payload]`.
    arena: Vec<u8>,
    /// Where each record in `arena` starts.
    index: Vec<usize>,
    /// The spilled runs, end to end: (start, length) of each.
    runs: Vec<(u64, u64)>,
    file: Option<BufWriter<File>>,
    spilled: u64,
    count: u64,
    budget: usize,
}

impl Sorter {
    pub fn new() -> Sorter {
        Sorter::with_budget(BUDGET)
    }

    fn with_budget(budget: usize) -> Sorter {
        Sorter {
            arena: Vec::new(),
            index: Vec::new(),
            runs: Vec::new(),
            file: None,
            spilled: 0,
            count: 0,
            budget,
        }
    }

    /// How many records were pushed.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn push(&mut self, key: &[u8], payload: &[u8]) -> Result<()> {
        self.index.push(self.arena.len());
        self.arena.extend_from_slice(&len32(key)?.to_le_bytes());
        self.arena.extend_from_slice(&len32(payload)?.to_le_bytes());
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(payload);
        self.count += 1;
        if self.arena.len() + self.index.len() * 8 >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Sort what is held; then the records can be read back, any number of times.
    pub fn sorted(mut self) -> Result<Sorted> {
        if self.runs.is_empty() {
            self.sort();
            return Ok(Sorted::Held(self));
        }
        self.spill()?;
        let file = match self.file.take() {
            Some(file) => file.into_inner().map_err(|e| e.into_error())?,
            None => return Err(anyhow::anyhow!("a sort spilled nothing")),
        };
        Ok(Sorted::Spilled {
            file,
            runs: self.runs,
        })
    }

    /// Stable without a stable sort's scratch buffer: records pushed later
    /// lie further into the arena, so equal keys are ordered by where.
    fn sort(&mut self) {
        let arena = &self.arena;
        self.index
            .sort_unstable_by(|&a, &b| key_order(key(arena, a), key(arena, b)).then(a.cmp(&b)));
    }

    /// Write what is held out as one sorted run.
    fn spill(&mut self) -> Result<()> {
        if self.index.is_empty() {
            return Ok(());
        }
        self.sort();
        let out = match &mut self.file {
            Some(out) => out,
            None => self
                .file
                .insert(BufWriter::with_capacity(1 << 16, tempfile::tempfile()?)),
        };
        let start = self.spilled;
        for &at in &self.index {
            let (key, payload) = record(&self.arena, at);
            let head = &self.arena[at..at + 8];
            out.write_all(head)?;
            out.write_all(key)?;
            out.write_all(payload)?;
            self.spilled += (8 + key.len() + payload.len()) as u64;
        }
        self.runs.push((start, self.spilled - start));
        self.arena.clear();
        self.index.clear();
        Ok(())
    }
}

/// Sorted records, ready to be read back in order.
pub enum Sorted {
    Held(Sorter),
    Spilled { file: File, runs: Vec<(u64, u64)> },
}

impl Sorted {
    /// Hand each record's payload to `visit`, in key order.
    pub fn each(&self, visit: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        match self {
            Sorted::Held(sorter) => {
                for &at in &sorter.index {
                    visit(record(&sorter.arena, at).1)?;
                }
                Ok(())
            }
            Sorted::Spilled { file, runs } => merge(file, runs, visit),
        }
    }
}

/// The next record of each run on a heap, smallest key (then earliest
/// run, for stability) first.
fn merge(
    file: &File,
    runs: &[(u64, u64)],
    visit: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut readers: Vec<BufReader<Run>> = runs
        .iter()
        .map(|&(at, len)| {
            BufReader::with_capacity(
                1 << 16,
                Run {
                    file,
                    at,
                    end: at + len,
                },
            )
        })
        .collect();
    let mut heap = BinaryHeap::new();
    for (i, reader) in readers.iter_mut().enumerate() {
        let (mut key, mut payload) = (Vec::new(), Vec::new());
        if next(reader, &mut key, &mut payload)? {
            heap.push(Reverse((Key(key), i, payload)));
        }
    }
    // Each run's record read into the buffers of the one it follows.
    while let Some(Reverse((Key(mut key), i, mut payload))) = heap.pop() {
        visit(&payload)?;
        if next(&mut readers[i], &mut key, &mut payload)? {
            heap.push(Reverse((Key(key), i, payload)));
        }
    }
    Ok(())
}

/// A key on the merge's heap, in [`key_order`].
#[derive(PartialEq, Eq)]
struct Key(Vec<u8>);

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        key_order(&self.0, &other.0)
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The next record of a run read into `key` and `payload`; `false` at
/// its end.
fn next(reader: &mut impl Read, key: &mut Vec<u8>, payload: &mut Vec<u8>) -> io::Result<bool> {
    let mut head = [0u8; 8];
    match reader.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let [a, b, c, d, e, f, g, h] = head;
    key.clear();
    key.resize(u32::from_le_bytes([a, b, c, d]) as usize, 0);
    payload.clear();
    payload.resize(u32::from_le_bytes([e, f, g, h]) as usize, 0);
    reader.read_exact(key)?;
    reader.read_exact(payload)?;
    Ok(true)
}

/// One run of the temp file, read from its own offset.
struct Run<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for Run<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.at) as usize);
        let got = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += got as u64;
        Ok(got)
    }
}

/// Byte order, as `[u8]`'s `cmp`, eight bytes at a time (a sort compares
/// keys ~17 times each over 100,000 rows).
fn key_order(a: &[u8], b: &[u8]) -> Ordering {
    let (mut a, mut b) = (a, b);
    while let (Some((x, ra)), Some((y, rb))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        match u64::from_be_bytes(*x).cmp(&u64::from_be_bytes(*y)) {
            Ordering::Equal => (a, b) = (ra, rb),
            unequal => return unequal,
        }
    }
    a.cmp(b)
}

/// The key of the record at `at`.
fn key(arena: &[u8], at: usize) -> &[u8] {
    let len = arena
        .get(at..at + 4)
        .and_then(|n| n.try_into().ok())
        .map_or(0, |n| u32::from_le_bytes(n) as usize);
    arena.get(at + 8..at + 8 + len).unwrap_or_default()
}

/// The key and payload of the record at `at`.
fn record(arena: &[u8], at: usize) -> (&[u8], &[u8]) {
    let n = |i: usize| {
        u32::from_le_bytes([arena[i], arena[i + 1], arena[i + 2], arena[i + 3]]) as usize
    };
    let (klen, plen) = (n(at), n(at + 4));
    let key = at + 8;
    (
        &arena[key..key + klen],
        &arena[key + klen..key + klen + plen],
    )
}

fn len32(bytes: &[u8]) -> Result<u32> {
    u32::try_from(bytes.len()).map_err(|_| anyhow::anyhow!("a listing record over 4 GiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(sorted: &Sorted) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        sorted
            .each(&mut |p| {
                out.push(p.to_vec());
                Ok(())
            })
            .unwrap();
        out
    }

    /// The same order in memory and spilled into many runs: by key, and
    /// in push order among equal keys.
    #[test]
    fn sorts_stably_in_memory_and_spilled() {
        let records: Vec<(Vec<u8>, Vec<u8>)> = (0u32..1000)
            .map(|i| {
                let key = ((i * 7919) % 97).to_be_bytes().to_vec();
                (key, i.to_le_bytes().repeat(1 + (i % 5) as usize))
            })
            .collect();
        let mut expected = records.clone();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let expected: Vec<Vec<u8>> = expected.into_iter().map(|r| r.1).collect();
        for budget in [BUDGET, 256, 1] {
            let mut sorter = Sorter::with_budget(budget);
            for (k, p) in &records {
                sorter.push(k, p).unwrap();
            }
            assert_eq!(sorter.len(), 1000);
            let spilled = budget < BUDGET;
            let sorted = sorter.sorted().unwrap();
            assert_eq!(matches!(sorted, Sorted::Spilled { .. }), spilled);
            // Read back twice, the same.
            for _ in 0..2 {
                assert!(drain(&sorted) == expected, "budget {budget}: out of order");
            }
        }
        let empty = Sorter::with_budget(1).sorted().unwrap();
        assert!(drain(&empty).is_empty());
    }

    /// Keys compare as byte strings do, whatever their lengths.
    #[test]
    fn key_order_is_byte_order() {
        let keys: Vec<Vec<u8>> = (0u32..400)
            .map(|i| {
                let len = (i % 21) as usize;
                (0..len)
                    .map(|j| ((i * 31 + j as u32 * 7) % 3) as u8)
                    .collect()
            })
            .collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(key_order(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }
}
