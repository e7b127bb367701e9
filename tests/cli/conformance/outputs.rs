//! Conformance cases: `--output` files stored with the entry and restored on a hit.
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

/// A build step that makes every kind of output: an executable, a symlink,
/// an empty directory, a 0-byte file, a name with a newline and a non-UTF-8
/// byte, and a 200 MiB file (compressible: a counter, as a log would be).
const BUILD: &str = "echo $$ >> \"$COUNT\"; \
    mkdir -p dist/empty dist/sub && printf 'exec\\n' > dist/tool && chmod 755 dist/tool && \
    printf 'a\\n' > dist/sub/a && ln -s sub/a dist/link && : > dist/zero && \
    printf 'odd' > \"dist/$(printf 'new\\nline\\377')\" && \
    { [ -f big.ref ] || seq 1 30000000 | head -c 209715200 > big.ref; } && cp big.ref dist/big && \
    echo built";

fn odd_name() -> &'static OsStr {
    OsStr::from_bytes(b"dist/new\nline\xff")
}

fn same_file(a: &Path, b: &Path) -> bool {
    std::process::Command::new("cmp")
        .args([a, b])
        .status()
        .unwrap()
        .success()
}

fn assert_tree(env: &Env) {
    let dist = env.path("dist");
    let tool = std::fs::metadata(dist.join("tool")).unwrap();
    assert_eq!(
        tool.permissions().mode() & 0o111,
        0o111,
        "tool is executable"
    );
    assert_eq!(std::fs::read(dist.join("tool")).unwrap(), b"exec\n");
    let link = std::fs::symlink_metadata(dist.join("link")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(dist.join("link")).unwrap(),
        Path::new("sub/a")
    );
    assert_eq!(std::fs::read(dist.join("link")).unwrap(), b"a\n");
    assert!(
        std::fs::read_dir(dist.join("empty"))
            .unwrap()
            .next()
            .is_none()
    );
    assert_eq!(std::fs::read(dist.join("zero")).unwrap(), b"");
    let plain = std::fs::metadata(dist.join("zero")).unwrap();
    assert_eq!(
        plain.permissions().mode() & 0o111,
        0,
        "zero is not executable"
    );
    assert_eq!(
        std::fs::read(env.path("").join(odd_name())).unwrap(),
        b"odd"
    );
    assert!(
        same_file(&env.path("big.ref"), &dist.join("big")),
        "big differs"
    );
}

pub(super) fn outputs_are_restored_byte_exact(env: &Env) {
    env.run_sh(&["--output", "dist"], BUILD)
        .assert()
        .code(0)
        .stdout("built\n");
    assert_tree(env);
    std::fs::remove_dir_all(env.path("dist")).unwrap();
    env.run_sh(&["--output", "dist"], BUILD)
        .assert()
        .code(0)
        .stdout("built\n")
        .stderr("");
    assert_eq!(env.runs(), 1, "the second run is a hit");
    assert_tree(env);
    let listed = env.json(&["ls", "--json"]);
    assert_eq!(listed[0]["outputs"], 9);
    assert_eq!(listed[0]["outputs_size"], 209715200 + 5 + 2 + 3);
    let key = listed[0]["key"].as_str().unwrap()[..12].to_string();
    // Paths are printed as stored: bytes, not necessarily UTF-8.
    let shown = env.cachier(&["show", &key, "--outputs"]).output().unwrap();
    assert_eq!(shown.status.code(), Some(0));
    assert!(
        shown
            .stdout
            .windows(26)
            .any(|w| w == b"file 644\t3\tdist/new\nline\xff\n"),
        "the odd name is listed as its bytes"
    );
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("file 755\t5\tdist/tool\n"), "{shown}");
    assert!(shown.contains("link 777\t5\tdist/link\n"), "{shown}");
    assert!(shown.contains("dir 755\t0\tdist/empty\n"), "{shown}");
    let json = env.json(&["show", &key, "--outputs", "--json"]);
    assert_eq!(json.as_array().unwrap().len(), 9);
}

pub(super) fn a_changed_output_set_is_another_key(env: &Env) {
    let script = "echo $$ >> \"$COUNT\"; mkdir -p a b; echo x > a/f; echo y > b/f";
    for flags in [
        &["--output", "a"][..],
        &["--output", "a", "--output", "b"],
        &["--output", "a"],
    ] {
        env.run_sh(flags, script).assert().code(0);
    }
    assert_eq!(env.runs(), 2);
    let key = |extra: &[&str]| {
        let mut args = vec!["key"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "true"]);
        env.stdout(&args)
    };
    assert_ne!(key(&["--output", "a"]), key(&["--output", "b"]));
    assert_ne!(key(&["--output", "a"]), key(&[]));
}

pub(super) fn stdin_and_input_combine_with_outputs(env: &Env) {
    let work = env.path("work");
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::write(work.join("src/in"), "one\n").unwrap();
    let script = "echo $$ >> \"$COUNT\"; mkdir -p dist; cat - src/in > dist/out; echo done";
    let run = |stdin: &str| {
        std::fs::write(env.path("in"), stdin).unwrap();
        env.run_sh(&["--input", ".", "--stdin", "--output", "dist"], script)
            .current_dir(&work)
            .stdin(std::fs::File::open(env.path("in")).unwrap())
            .assert()
            .code(0)
            .stdout("done\n");
    };
    run("a\n");
    // dist/ is left out of `--input .`: the step's own files do not change its key.
    std::fs::remove_dir_all(work.join("dist")).unwrap();
    run("a\n");
    assert_eq!(env.runs(), 1);
    assert_eq!(std::fs::read(work.join("dist/out")).unwrap(), b"a\none\n");
    run("b\n");
    assert_eq!(env.runs(), 2, "other stdin, other key");
    std::fs::write(work.join("src/in"), "two\n").unwrap();
    run("b\n");
    assert_eq!(env.runs(), 3, "other input, other key");
    assert_eq!(std::fs::read(work.join("dist/out")).unwrap(), b"b\ntwo\n");
}
