//! Forging an entry: a real one is exported, its outputs archive replaced
//! by one written here (the format in src/outputs/archive.rs, written anew
//! so the test does not trust the code it checks), its metadata and the
//! dump's checksums made to match, and the dump imported: the store then
//! holds an entry whose every checksum verifies.
use ciborium::Value;

use crate::harness::*;

/// One archive record: kind (`f`, `l`, `d`), path, mode, content.
pub struct Rec<'a>(pub u8, pub &'a [u8], pub u32, pub &'a [u8]);

pub fn archive(records: &[Rec]) -> Vec<u8> {
    let mut raw = b"cachier-outputs1".to_vec();
    for Rec(kind, path, mode, content) in records {
        raw.push(*kind);
        raw.extend_from_slice(&(path.len() as u32).to_le_bytes());
        raw.extend_from_slice(path);
        raw.extend_from_slice(&mode.to_le_bytes());
        raw.extend_from_slice(&(content.len() as u64).to_le_bytes());
        raw.extend_from_slice(content);
    }
    raw.push(b'z');
    zstd::encode_all(&raw[..], 3).unwrap()
}

/// Replace the only entry in `env`'s store with the one exported from it,
/// its outputs now `archive`, declared as `count` records of `size` bytes.
pub fn plant(env: &Env, archive: &[u8], count: u64, size: u64) {
    let dump = env.cachier(&["export"]).output().unwrap();
    assert_eq!(dump.status.code(), Some(0));
    let dump = dump.stdout;
    let header = &dump[..14];
    assert_eq!(dump[14], b'E');
    let len = u32::from_le_bytes(dump[15..19].try_into().unwrap()) as usize;
    let meta_at = 19;
    let mut meta: Value = ciborium::from_reader(&dump[meta_at..meta_at + len]).unwrap();
    let body_at = meta_at + len + 32;
    let field = |meta: &Value, name: &str| -> u64 {
        let map = meta.as_map().unwrap();
        let v = &map
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .unwrap()
            .1;
        u64::try_from(v.as_integer().unwrap()).unwrap()
    };
    let printed = (field(&meta, "stdout_len") + field(&meta, "stderr_len")) as usize;
    let body = &dump[body_at..body_at + printed];
    let outputs = Value::Map(vec![
        (
            Value::Text("len".into()),
            Value::Integer((archive.len() as u64).into()),
        ),
        (Value::Text("blake3".into()), Value::Bytes(blake3(archive))),
        (Value::Text("count".into()), Value::Integer(count.into())),
        (Value::Text("size".into()), Value::Integer(size.into())),
    ]);
    for (k, v) in meta.as_map_mut().unwrap() {
        if k.as_text() == Some("outputs") {
            *v = outputs.clone();
        }
    }
    let mut record = vec![b'E', 0, 0, 0, 0];
    ciborium::into_writer(&meta, &mut record).unwrap();
    let meta_len = (record.len() - 5) as u32;
    record[1..5].copy_from_slice(&meta_len.to_le_bytes());
    let mut forged = header.to_vec();
    forged.extend_from_slice(&record);
    forged.extend_from_slice(&blake3(&record));
    forged.extend_from_slice(body);
    forged.extend_from_slice(archive);
    let mut end = vec![b'Z'];
    end.extend_from_slice(&1u64.to_le_bytes());
    forged.extend_from_slice(&end);
    forged.extend_from_slice(&blake3(&end));
    env.cachier(&["clear"]).output().unwrap();
    std::fs::write(env.path("forged.dump"), &forged).unwrap();
    let imported = env
        .cachier(&["import"])
        .stdin(std::fs::File::open(env.path("forged.dump")).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        imported.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert_eq!(env.count_entries(), 1);
}

fn blake3(bytes: &[u8]) -> Vec<u8> {
    ::blake3::hash(bytes).as_bytes().to_vec()
}
