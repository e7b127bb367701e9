//! Entry format versions (SPEC §1.9) on every backend and stack: an entry
//! a newer cachier wrote is a miss, with one warning, and is never deleted
//! or overwritten, so a fleet halfway through an upgrade keeps its entries.
//!
//! The entry is planted as a newer cachier's `export` would bring it: a
//! dump whose metadata says format 99, imported as is.
use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

crate::backend::on_every_backend!(newer_format_entry_is_a_miss_and_stays);

/// `dump` with its one entry's metadata set to format `version`, and its
/// record checksum made again (the layout is in `src/dump/mod.rs`).
fn with_format(dump: &[u8], version: u64) -> Vec<u8> {
    let head = b"cachier-dump\n".len() + 1;
    assert_eq!(dump[head], b'E');
    let len = u32::from_le_bytes(dump[head + 1..head + 5].try_into().unwrap()) as usize;
    let meta_at = head + 5;
    let rest = &dump[meta_at + len + 32..];
    let mut meta: ciborium::Value = ciborium::from_reader(&dump[meta_at..meta_at + len]).unwrap();
    let fields = meta.as_map_mut().unwrap();
    fields.retain(|(k, _)| k.as_text() != Some("format"));
    fields.push(("format".into(), version.into()));
    let mut bytes = Vec::new();
    ciborium::into_writer(&meta, &mut bytes).unwrap();
    let mut record = vec![b'E'];
    record.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    record.extend_from_slice(&bytes);
    let check = *blake3::hash(&record).as_bytes();
    let mut out = dump[..head].to_vec();
    out.extend_from_slice(&record);
    out.extend_from_slice(&check);
    out.extend_from_slice(rest);
    out
}

pub(super) fn newer_format_entry_is_a_miss_and_stays(env: &Env) {
    env.run_sh(&[], &counted("hi"))
        .assert()
        .code(0)
        .stdout("hi");
    let dump = env.cachier(&["export"]).output().unwrap();
    assert_eq!(dump.status.code(), Some(0));
    env.cachier(&["clear"]).assert().code(0);
    assert_eq!(env.count_entries(), 0);
    assert_cmd::Command::from_std(env.cachier(&["import"]))
        .write_stdin(with_format(&dump.stdout, 99))
        .assert()
        .code(0);
    assert_eq!(env.count_entries(), 1);
    for runs in [2, 3] {
        let out = env.run_sh(&[], &counted("hi")).output().unwrap();
        assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.starts_with("cachier: warning: cache entry ")
                && stderr.ends_with(
                    " has format version 99, newer than this cachier's 2; left it in place \
                     (upgrade cachier to use it); ran the command\n"
                )
                && stderr.lines().count() == 1,
            "{stderr}"
        );
        // Run, not replaced: the next run meets the same newer entry.
        assert_eq!((env.runs(), env.count_entries()), (runs, 1));
    }
    // Nor does a corrupt-entry path or an import replace it.
    assert_cmd::Command::from_std(env.cachier(&["import"]))
        .write_stdin(dump.stdout.clone())
        .assert()
        .code(0);
    let out = env.run_sh(&[], &counted("hi")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("format version 99"));
}
