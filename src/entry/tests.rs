//! Unit tests of the entry metadata and body checks.
use super::*;

fn meta(stdout_len: u64, stderr_len: u64, runs: &[(Stream, u64)]) -> Vec<u8> {
    let meta = Meta {
        stdout_len,
        stderr_len,
        runs: runs
            .iter()
            .map(|&(stream, len)| Run { stream, len })
            .collect(),
        ..Meta::blank(Key([1; 32]))
    };
    let mut bytes = Vec::new();
    ciborium::into_writer(&meta, &mut bytes).unwrap();
    bytes
}

fn why(bytes: &[u8]) -> Option<String> {
    Meta::decode(bytes, &Key([1; 32]))
        .err()
        .map(|e| e.downcast::<Corrupt>().unwrap().why)
}

/// Found by the entry_meta and dump_stream fuzz targets: lengths whose
/// sums overflow, and runs that do not cover the output, decoded fine
/// and then panicked (or replayed wrong bytes) in the stores and the replay.
#[test]
fn lengths_must_add_up() {
    use Stream::{Stderr, Stdout};
    assert_eq!(
        why(&meta(6, 4, &[(Stdout, 2), (Stderr, 4), (Stdout, 4)])),
        None
    );
    assert_eq!(why(&meta(0, 0, &[])), None);
    let overflow = Some("output lengths out of range".to_string());
    assert_eq!(why(&meta(u64::MAX, 1, &[])), overflow);
    let runs = Some("output runs out of range".to_string());
    assert_eq!(why(&meta(2, 0, &[(Stdout, 2), (Stdout, u64::MAX)])), runs);
    let miss = Some("output runs do not match the output lengths".to_string());
    assert_eq!(why(&meta(6, 4, &[(Stdout, 10)])), miss);
    assert_eq!(why(&meta(6, 4, &[(Stdout, 6), (Stderr, 3)])), miss);
    assert_eq!(why(&meta(6, 0, &[(Stderr, 6)])), miss);
}
