//! Names `--output` must get right: bytes that are not UTF-8 (in a file's
//! name and in the `--output` argument itself), and the temp files a
//! killed restore leaves behind.
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;
use std::time::{Duration, SystemTime};

use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

/// `cachier run` with raw `--output` arguments, then `sh -c SCRIPT`.
fn run_raw(env: &Env, outputs: &[&[u8]], script: &str) -> std::process::Output {
    let mut cmd: Command = env.cachier(&["run"]);
    for spec in outputs {
        cmd.arg("--output").arg(OsStr::from_bytes(spec));
    }
    cmd.args(["--", "sh", "-c", script])
        .env("COUNT", env.path("count"));
    output_within(cmd, Duration::from_secs(60)).0
}

/// The names in `dir`, sorted, as bytes.
fn names(env: &Env, dir: &str) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = std::fs::read_dir(env.path(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    all.sort();
    all
}

fn only_key(env: &Env) -> String {
    env.json(&["ls", "--json"])[0]["key"].as_str().unwrap()[..12].to_string()
}

#[test]
fn non_utf8_names_are_captured_and_restored_byte_exact() {
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; mkdir -p out g lit; \
        for n in \"$(printf '\\377').bin\" \"a$(printf '\\376')\" \"$(printf '\\375').tmp\"; do echo x > \"out/$n\"; done; \
        echo g > \"g/x$(printf '\\377').bin\"; echo l > \"lit/$(printf '\\377')\"; echo built";
    // A glob, an exclusion, a glob and a path holding a raw byte.
    let outputs: [&[u8]; 4] = [b"out/*", b"!out/*.tmp", b"g/*\xff.bin", b"lit/\xff"];
    let out = run_raw(&env, &outputs, script);
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"built\n"[..])
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let shown = env
        .cachier(&["show", &only_key(&env), "--outputs"])
        .output()
        .unwrap();
    assert_eq!(
        shown.stdout,
        b"file 644\t2\tg/x\xff.bin\nfile 644\t2\tlit/\xff\nfile 644\t2\tout/a\xfe\nfile 644\t2\tout/\xff.bin\n"
    );
    for dir in ["out", "g", "lit"] {
        std::fs::remove_dir_all(env.path(dir)).unwrap();
    }
    let out = run_raw(&env, &outputs, script);
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"built\n"[..])
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(env.runs(), 1, "a hit");
    assert_eq!(names(&env, "out"), [&b"a\xfe"[..], b"\xff.bin"]);
    assert_eq!(names(&env, "g"), [b"x\xff.bin"]);
    assert_eq!(names(&env, "lit"), [b"\xff"]);
    assert_eq!(std::fs::read(env.path("g/x\u{fffd}.bin")).ok(), None);
}

/// `show --outputs --json` loses no name: UTF-8 as `{"text": ...}`, any
/// other bytes as `{"bytes": BASE64}` (ripgrep's `--json` shape).
#[test]
fn show_outputs_json_gives_every_name_exactly() {
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; mkdir -p out; echo x > \"out/$(printf 'caf\\303\\251')\"; \
        echo y > \"out/$(printf '\\377\\376')\"; echo built";
    let out = run_raw(&env, &[b"out"], script);
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"built\n"[..])
    );
    let shown = env
        .cachier(&["show", &only_key(&env), "--outputs", "--json"])
        .output()
        .unwrap();
    assert_eq!(shown.status.code(), Some(0));
    // "b3V0L//+" is base64 of the bytes `out/\xff\xfe`.
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout),
        r#"[
  {
    "path": {
      "text": "out"
    },
    "kind": "dir",
    "size": 0,
    "mode": "755"
  },
  {
    "path": {
      "text": "out/café"
    },
    "kind": "file",
    "size": 2,
    "mode": "644"
  },
  {
    "path": {
      "bytes": "b3V0L//+"
    },
    "kind": "file",
    "size": 2,
    "mode": "644"
  }
]
"#
    );
}

#[test]
fn restore_temp_files_are_never_stored_and_stale_ones_are_removed() {
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; mkdir -p dist; echo ok > dist/ok; echo built";
    std::fs::create_dir_all(env.path("dist")).unwrap();
    let stale = [
        "dist/.cachier-restore-4242-7-0123456789abcdef.tmp",
        // What earlier versions named them.
        "dist/.cachier-restore-4242-8.tmp",
    ];
    // Another restore's, still being written; and the user's own file.
    let fresh = "dist/.cachier-restore-4243-0-fedcba9876543210.tmp";
    let mine = "dist/.cachier-restore-mine.tmp";
    let old = SystemTime::now() - Duration::from_secs(2 * 3600);
    for name in stale.iter().chain([&fresh, &mine]) {
        let file = std::fs::File::create(env.path(name)).unwrap();
        file.set_modified(if name.contains("4242") {
            old
        } else {
            SystemTime::now()
        })
        .unwrap();
    }
    env.run_sh(&["--output", "dist"], script)
        .assert()
        .code(0)
        .stdout("built\n")
        .stderr("");
    let shown = env.stdout(&["show", &only_key(&env), "--outputs"]);
    assert_eq!(
        shown,
        "dir 755\t0\tdist\nfile 644\t0\tdist/.cachier-restore-mine.tmp\nfile 644\t3\tdist/ok\n"
    );
    // A hit where the killed restore left its files: the stale ones go.
    env.run_sh(&["--output", "dist"], script)
        .assert()
        .code(0)
        .stdout("built\n")
        .stderr("");
    assert_eq!(env.runs(), 1, "a hit");
    assert_eq!(
        names(&env, "dist"),
        [
            &b".cachier-restore-4243-0-fedcba9876543210.tmp"[..],
            b".cachier-restore-mine.tmp",
            b"ok",
        ]
    );
}
