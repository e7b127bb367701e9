//! The local tree in the way of a restore: not the entry's fault.
use super::hostile::build;
use crate::harness::*;

pub(crate) fn a_blocked_restore_keeps_the_entry(env: &Env) {
    assert_eq!(build(env).status.code(), Some(0));
    let work = env.path("work");
    // The user's `dist -> elsewhere` symlink.
    std::fs::remove_dir_all(work.join("dist")).unwrap();
    std::fs::create_dir(env.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(env.path("elsewhere"), work.join("dist")).unwrap();
    let out = build(env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(out.stdout, b"built\n");
    assert!(stderr.contains("not restored"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one warning: {stderr}");
    assert_eq!(env.runs(), 2, "the command ran");
    assert_eq!(env.count_entries(), 1, "the entry stays");
    // A directory where the entry has a file.
    std::fs::remove_file(work.join("dist")).unwrap();
    std::fs::create_dir_all(work.join("dist/ok")).unwrap();
    let out = build(env);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not restored"));
    assert_eq!(env.runs(), 3);
    // Out of the way: the entry, kept, is served.
    std::fs::remove_dir_all(work.join("dist")).unwrap();
    let out = build(env);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stderr, b"");
    assert_eq!(env.runs(), 3, "a hit");
    assert_eq!(std::fs::read(work.join("dist/ok")).unwrap(), b"ok\n");
}
