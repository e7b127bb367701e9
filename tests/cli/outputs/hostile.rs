//! Hostile archives planted in the store: each makes the entry corrupt
//! (discarded, the command runs) and nothing outside the declared outputs
//! is written.
use std::path::Path;

use super::forge::{Rec, archive, plant};
use crate::harness::*;

pub const BUILD: &str = "echo $$ >> \"$COUNT\"; mkdir -p dist; echo ok > dist/ok; echo built";

/// `cachier run --output dist -- sh -c BUILD` in `work/`.
pub fn build(env: &Env) -> std::process::Output {
    std::fs::create_dir_all(env.path("work")).unwrap();
    let mut cmd = env.run_sh(&["--output", "dist"], BUILD);
    cmd.current_dir(env.path("work"));
    output_within(cmd, std::time::Duration::from_secs(60)).0
}

/// What is wrong, the records, the (count, size) the metadata declares
/// (else the true ones), the paths that must not appear.
type Case<'a> = (&'a str, Vec<Rec<'a>>, Option<(u64, u64)>, &'a [&'a str]);

pub(crate) fn hostile_archives_are_discarded_and_touch_nothing(env: &Env) {
    let abs = env.path("evil-abs");
    let abs = abs.as_os_str().as_encoded_bytes().to_vec();
    let cases: Vec<Case> = vec![
        (
            "absolute path",
            vec![Rec(b'f', &abs, 0o644, b"x")],
            None,
            &["evil-abs"],
        ),
        (
            "`..`",
            vec![Rec(b'f', b"dist/../../evil-up", 0o644, b"x")],
            None,
            &["evil-up"],
        ),
        (
            ".git",
            vec![Rec(b'f', b".git/evil", 0o644, b"x")],
            None,
            &["work/.git"],
        ),
        (
            "outside the declarations",
            vec![Rec(b'f', b"src/evil", 0o644, b"x")],
            None,
            &["work/src"],
        ),
        (
            "a symlink leaving",
            vec![Rec(b'l', b"dist/creds", 0o777, b"../../secret")],
            None,
            &["work/dist/creds"],
        ),
        (
            "an absolute symlink",
            vec![Rec(b'l', b"dist/creds", 0o777, b"/etc/passwd")],
            None,
            &["work/dist/creds"],
        ),
        (
            "setuid",
            vec![Rec(b'f', b"dist/su", 0o4755, b"x")],
            None,
            &["work/dist/su"],
        ),
        (
            "more records than declared",
            vec![
                Rec(b'f', b"dist/a", 0o644, b"x"),
                Rec(b'f', b"dist/b", 0o644, b"y"),
            ],
            Some((1, 2)),
            &["work/dist/a", "work/dist/b"],
        ),
        (
            "more bytes than declared",
            vec![Rec(b'f', b"dist/a", 0o644, b"0123456789")],
            Some((1, 5)),
            &["work/dist/a"],
        ),
        (
            "a file under a symlink",
            vec![
                Rec(b'd', b"dist/d", 0o755, b""),
                Rec(b'l', b"dist/l", 0o777, b"d"),
                Rec(b'f', b"dist/l/f", 0o644, b"x"),
            ],
            None,
            &["work/dist/d", "work/dist/l"],
        ),
        (
            "a fault after files are staged",
            vec![
                Rec(b'd', b"dist/sub", 0o755, b""),
                Rec(b'f', b"dist/sub/a", 0o644, b"x"),
                Rec(b'f', b"dist/b", 0o644, b"y"),
                Rec(b'f', b"src/evil", 0o644, b"z"),
            ],
            None,
            &["work/dist/sub", "work/dist/b", "work/src"],
        ),
        (
            "a duplicate",
            vec![
                Rec(b'f', b"dist/a", 0o644, b"x"),
                Rec(b'f', b"dist/a", 0o644, b"x"),
            ],
            None,
            &["work/dist/a"],
        ),
    ];
    // The control: a sound forged archive is served as it is, so each
    // case below fails for its one fault and nothing else.
    assert_eq!(build(env).status.code(), Some(0));
    let sound = [
        Rec(b'd', b"dist", 0o755, b""),
        Rec(b'f', b"dist/forged", 0o755, b"hi\n"),
    ];
    plant(env, &archive(&sound), 2, 3);
    std::fs::remove_dir_all(env.path("work/dist")).unwrap();
    let out = build(env);
    assert_eq!((out.status.code(), &out.stderr[..]), (Some(0), &b""[..]));
    assert_eq!(env.runs(), 1, "the forged entry is a hit");
    assert_eq!(
        std::fs::read(env.path("work/dist/forged")).unwrap(),
        b"hi\n"
    );
    for (what, records, declared, victims) in cases {
        let first = build(env);
        assert_eq!(first.status.code(), Some(0), "{what}");
        let size: u64 = records
            .iter()
            .filter(|r| r.0 == b'f')
            .map(|r| r.3.len() as u64)
            .sum();
        let (count, size) = declared.unwrap_or((records.len() as u64, size));
        plant(env, &archive(&records), count, size);
        std::fs::remove_dir_all(env.path("work/dist")).unwrap();
        let before = env.runs();
        let out = build(env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
        assert_eq!(out.stdout, b"built\n", "{what}");
        assert!(stderr.contains("is corrupt"), "{what}: {stderr}");
        assert_eq!(env.runs(), before + 1, "{what}: the command ran");
        for victim in victims {
            assert!(
                !Path::new(&env.path(victim)).exists(),
                "{what}: {victim} was written"
            );
        }
        assert_eq!(
            std::fs::read(env.path("work/dist/ok")).unwrap(),
            b"ok\n",
            "{what}"
        );
        // Nothing staged is left behind (temp files, directories made).
        let left: Vec<_> = std::fs::read_dir(env.path("work/dist"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["ok"], "{what}");
        // The forged entry went; the run stored a sound one.
        assert_eq!(env.count_entries(), 1, "{what}");
    }
}
