//! Conformance cases: signed entries. Under a trust policy an entry that is
//! unsigned, signed by an unknown key, or re-dated in the store is a miss
//! (one warning naming it) and is replaced by the fresh result.
use assert_cmd::assert::OutputAssertExt;

use super::*;
use crate::harness::*;

/// A new key pair made by `cachier keygen` in the test's dir: (private key
/// text, the seed and its public key; public key).
pub fn keypair(env: &Env, name: &str) -> (String, String) {
    let out = env.cachier(&["keygen", name]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let seed = std::fs::read_to_string(env.path(name))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!((public.len(), seed.len()), (64, 128));
    assert_eq!(&seed[64..], public);
    (seed, public)
}

pub(super) fn forged_and_unsigned_entries_are_not_served(env: &Env) {
    let (seed, public) = keypair(env, "writer.key");
    let (forger_seed, _) = keypair(env, "forger.key");
    let script = numbered();
    let key = env.stdout(&["key", "--", "sh", "-c", &script]);
    let short = &key.trim()[..12];
    let plain = || env.run_sh(&[], &script);
    let reader = || {
        let mut cmd = env.run_sh(&[], &script);
        cmd.env("CACHIER_TRUSTED_KEYS", format!("{}, ", public));
        cmd
    };
    let writer = |flags: &[&str]| {
        let mut cmd = env.run_sh(flags, &script);
        cmd.env("CACHIER_SIGNING_KEY", &seed);
        cmd
    };
    let warned = |why: &str| {
        format!(
            "cachier: warning: cache entry {short} is {why}; not served, ran the command (its result replaces it)\n"
        )
    };
    // An unsigned entry, as anyone who can write to the store leaves it.
    plain().assert().code(0).stdout("1\n").stderr("");
    reader()
        .assert()
        .code(0)
        .stdout("2\n")
        .stderr(warned("not signed"));
    // A writer trusts its own key only, and signs what it stores.
    writer(&[])
        .assert()
        .code(0)
        .stdout("3\n")
        .stderr(warned("not signed"));
    reader().assert().code(0).stdout("3\n").stderr("");
    writer(&[]).assert().code(0).stdout("3\n").stderr("");
    // Signed, but by a key nobody trusts.
    let mut forged = env.run_sh(&["--overwrite"], &script);
    forged.env("CACHIER_SIGNING_KEY", &forger_seed);
    forged.assert().code(0).stdout("4\n");
    reader()
        .assert()
        .code(0)
        .stdout("5\n")
        .stderr(warned("signed by a key not in CACHIER_TRUSTED_KEYS"));
    writer(&["--overwrite"]).assert().code(0).stdout("6\n");
    reader().assert().code(0).stdout("6\n").stderr("");
    // Re-dated straight in the store: the seal covers the creation time.
    env.backend
        .age_entries(env.dir.path(), std::time::Duration::from_secs(5));
    reader()
        .assert()
        .code(0)
        .stdout("7\n")
        .stderr(warned("badly signed (its signature does not match it)"));
    assert_eq!(env.runs(), 7);
}
