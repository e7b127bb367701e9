//! Inputs the fuzz targets in `fuzz/` crashed on, through the real binary:
//! each panicked (exit 101 in this debug build; an abort, or a wrong value
//! or wrong bytes, in a release build) before its fix.
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::assert::OutputAssertExt;
use ciborium::Value;

use crate::backend::entry_files;
use crate::harness::*;

/// u64::MAX and one more digit: the `parse-size` crate overflowed on it
/// (found by the `units` target). A release build read it as 0 bytes.
const HUGE_SIZE: &str = "184467440737095516159";

#[test]
fn a_size_past_u64_is_refused_not_read_as_zero() {
    let env = Env::file();
    for args in [
        &["gc", "--max-size", HUGE_SIZE][..],
        &[
            "run",
            "--entry-size-limit",
            "18_446_744_073_709_551_615_9K",
            "--",
            "true",
        ],
        &["config", "set", "max_size", "18446744073709551615.9"],
    ] {
        let out = env.cachier(args).assert().code(2).get_output().clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("out of range: a size must be between 0 and 1P"),
            "{args:?}: {stderr}"
        );
    }
}

/// Rewrite the metadata of every file-store entry with `edit`.
fn edit_entries(dir: &Path, edit: impl Fn(&mut Vec<(Value, Value)>)) {
    for path in entry_files(dir) {
        let bytes = std::fs::read(&path).unwrap();
        let (rest, magic) = bytes.split_at(bytes.len() - 8);
        let (rest, len) = rest.split_at(rest.len() - 4);
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        let (body, meta) = rest.split_at(rest.len() - len);
        let mut value: Value = ciborium::from_reader(meta).unwrap();
        edit(value.as_map_mut().unwrap());
        let mut meta = Vec::new();
        ciborium::into_writer(&value, &mut meta).unwrap();
        let len = (meta.len() as u32).to_le_bytes();
        std::fs::write(&path, [body, &meta, &len, magic].concat()).unwrap();
    }
}

fn set(map: &mut [(Value, Value)], field: &str, to: Value) {
    let slot = map.iter_mut().find(|(k, _)| k.as_text() == Some(field));
    slot.unwrap().1 = to;
}

/// Prints how many times it ran, then `err` on stderr.
const SCRIPT: &str = "echo $$ >> \"$COUNT\"; wc -l < \"$COUNT\" | tr -d ' '; echo err >&2";

/// Run the script with stdout and stderr into one file (so a hit replays
/// the recorded order); its exit code and the file's text.
fn run_into_one_file(env: &Env) -> (Option<i32>, String) {
    let path = env.path("both");
    let file = File::create(&path).unwrap();
    let mut child = env
        .run_sh(&[], SCRIPT)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "cachier did not exit within 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.code(), std::fs::read_to_string(path).unwrap())
}

/// The second run: the command's own output, fresh, after one warning
/// that names the problem.
fn recomputed(env: &Env, why: &str) {
    let (code, text) = run_into_one_file(env);
    let mut lines = text.lines();
    let warning = lines.next().unwrap_or_default();
    assert!(
        warning.starts_with("cachier: warning: cache entry ")
            && warning.ends_with(&format!(
                "is corrupt ({why}); discarded it and ran the command"
            )),
        "{text}"
    );
    assert_eq!(
        (code, lines.collect::<Vec<_>>()),
        (Some(0), vec!["2", "err"])
    );
}

fn stored(env: &Env) {
    let (code, text) = run_into_one_file(env);
    assert_eq!((code, text.as_str()), (Some(0), "1\nerr\n"));
}

fn run(stream: &str, len: u64) -> Value {
    Value::Map(vec![
        (Value::from("stream"), Value::from(stream)),
        (Value::from("len"), Value::Integer(len.into())),
    ])
}

#[test]
fn an_entry_whose_lengths_overflow_is_discarded() {
    let env = Env::file();
    stored(&env);
    edit_entries(env.dir.path(), |map| {
        set(map, "stdout_len", Value::Integer(u64::MAX.into()));
    });
    recomputed(&env, "output lengths out of range");
}

#[test]
fn an_entry_whose_runs_overflow_is_discarded() {
    let env = Env::file();
    stored(&env);
    edit_entries(env.dir.path(), |map| {
        let runs = vec![run("Stdout", 2), run("Stdout", u64::MAX), run("Stderr", 4)];
        set(map, "runs", Value::Array(runs));
    });
    recomputed(&env, "output runs out of range");
}

/// The body's checksums do not cover the runs: a run longer than its
/// stream replayed stderr's bytes as stdout's, and then again.
#[test]
fn an_entry_whose_runs_miss_the_lengths_is_discarded() {
    let env = Env::file();
    stored(&env);
    edit_entries(env.dir.path(), |map| {
        set(
            map,
            "runs",
            Value::Array(vec![run("Stdout", 6), run("Stderr", 4)]),
        );
    });
    recomputed(&env, "output runs do not match the output lengths");
}
