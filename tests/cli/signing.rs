//! Signing keys on the file store: keygen, both key texts (the seed and its
//! public key, or the seed alone), no key in any output or in the wrapped
//! command's environment, bad keys refused in one line, import's refusal of
//! unsigned entries, and who signed an entry in `ls` and `show`.
use std::os::unix::fs::PermissionsExt;

use assert_cmd::assert::OutputAssertExt;

use crate::conformance::signed::keypair;
use std::process::{Command, Output};

use crate::dump::export;
use crate::harness::*;

const SECRET: &str = "5ec12e75ec12e75ec12e75ec12e75ec12e75ec12e75ec12e75ec12e75ec12e70";

#[test]
fn keygen_writes_a_private_file_and_never_overwrites_it() {
    let env = Env::file();
    let (seed, public) = keypair(&env, "k");
    let mode = std::fs::metadata(env.path("k"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_ne!(seed, public);
    env.cachier(&["keygen", "k"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicates::str::contains(
            "exists; keygen never overwrites a key",
        ));
    assert_eq!(std::fs::read_to_string(env.path("k")).unwrap().trim(), seed);
    // `-`: the seed on stdout (a pipe here), the public key on stderr.
    let out = env.cachier(&["keygen", "-"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let seed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(seed.trim().len(), 128);
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(!said.contains(seed.trim()), "{said}");
    assert!(said.starts_with("cachier: public key "), "{said}");
}

#[test]
fn no_key_reaches_the_command_or_any_output() {
    let env = Env::file();
    let script = "echo \"${CACHIER_SIGNING_KEY:-none}\"";
    let mut cmd = env.run_sh(&[], script);
    cmd.env("CACHIER_SIGNING_KEY", SECRET);
    cmd.assert().code(0).stdout("none\n").stderr("");
    for args in [
        &["key", "--explain", "--", "sh", "-c", script][..],
        &["config", "list"][..],
        &["ls", "--json"][..],
    ] {
        let out = env
            .cachier(args)
            .env("CACHIER_SIGNING_KEY", SECRET)
            .output()
            .unwrap();
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !String::from_utf8_lossy(&all).contains(&SECRET[..16]),
            "{args:?}"
        );
    }
    // A bad key: one line naming the variable, never its value.
    let bad = format!("{}zz", &SECRET[..62]);
    let mut cmd = env.run_sh(&[], "echo ran");
    cmd.env("CACHIER_SIGNING_KEY", &bad);
    cmd.assert().code(2).stdout("").stderr(
        "cachier: CACHIER_SIGNING_KEY: is not 64 or 128 hex digits (make a key with `cachier keygen`)\n",
    );
    let mut cmd = env.run_sh(&[], "echo ran");
    cmd.env("CACHIER_TRUSTED_KEYS", format!("{SECRET},{bad}"));
    cmd.assert().code(2).stdout("").stderr(
        "cachier: CACHIER_TRUSTED_KEYS: key 2 is not 64 hex digits (list the public keys `cachier keygen` printed, comma-separated)\n",
    );
}

#[test]
fn a_key_with_its_public_half_signs_and_serves() {
    let env = Env::file();
    let (pair, public) = keypair(&env, "k");
    let script = counted("signed\n");
    let writer = || {
        let mut cmd = env.run_sh(&[], &script);
        cmd.env("CACHIER_SIGNING_KEY", &pair);
        cmd
    };
    writer().assert().code(0).stdout("signed\n").stderr("");
    writer().assert().code(0).stdout("signed\n").stderr("");
    let mut reader = env.run_sh(&[], &script);
    reader.env("CACHIER_TRUSTED_KEYS", &public);
    reader.assert().code(0).stdout("signed\n").stderr("");
    assert_eq!(env.runs(), 1);
    let listed = env.json(&["ls", "--json"]);
    assert_eq!(
        listed[0]["signed_by"].as_str(),
        Some(format!("ed25519:{}", &public[..16]).as_str())
    );
}

/// A signed hit verifies the seal once: the user's table of verified seals
/// (private) answers later hits. Its records name the exact signed bytes,
/// so an entry altered since is verified again and refused; a damaged
/// table only means verifying again.
#[test]
fn a_verified_seal_is_remembered_and_an_altered_entry_still_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::file();
    let (pair, public) = keypair(&env, "k");
    let script = counted("signed\n");
    let mut writer = env.run_sh(&[], &script);
    writer.env("CACHIER_SIGNING_KEY", &pair);
    writer.assert().code(0).stdout("signed\n").stderr("");
    let reader = || {
        let mut cmd = env.run_sh(&[], &script);
        cmd.env("CACHIER_TRUSTED_KEYS", &public);
        cmd
    };
    let table = env.path("xdg-cache/cachier/seals");
    assert!(!table.exists());
    reader().assert().code(0).stdout("signed\n").stderr("");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&table), 0o600, "the hit's verification was remembered");
    assert_eq!(mode(table.parent().unwrap()), 0o700);
    reader().assert().code(0).stdout("signed\n").stderr("");
    for garbage in [vec![0xa5; 1 << 20], b"short".to_vec()] {
        std::fs::write(&table, garbage).unwrap();
        reader().assert().code(0).stdout("signed\n").stderr("");
    }
    // Re-dated in the store after its seal was remembered.
    env.backend
        .age_entries(env.dir.path(), std::time::Duration::from_secs(5));
    reader()
        .assert()
        .code(0)
        .stdout("signed\n")
        .stderr(predicates::str::contains(
            "badly signed (its signature does not match it)",
        ));
    assert_eq!(env.runs(), 2);
}

#[test]
fn a_seed_alone_still_signs() {
    let env = Env::file();
    let (pair, public) = keypair(&env, "k");
    let seed = &pair[..64];
    let mut writer = env.run_sh(&[], &counted("old\n"));
    writer.env("CACHIER_SIGNING_KEY", seed);
    writer.assert().code(0).stdout("old\n").stderr("");
    // The same seed in a key file.
    std::fs::write(env.path("k"), format!("{seed}\n")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        format!("signing_key_file = \"{}\"\n", env.path("k").display()),
    )
    .unwrap();
    env.run_sh(&[], &counted("file\n"))
        .assert()
        .code(0)
        .stdout("file\n")
        .stderr("");
    std::fs::remove_file(env.path("config.toml")).unwrap();
    for text in ["old\n", "file\n"] {
        let mut reader = env.run_sh(&[], &counted(text));
        reader.env("CACHIER_TRUSTED_KEYS", &public);
        reader.assert().code(0).stdout(text).stderr("");
    }
    assert_eq!(env.runs(), 2);
}

#[test]
fn a_public_half_that_is_not_the_seeds_is_refused_before_the_command_runs() {
    let env = Env::file();
    let (pair, _) = keypair(&env, "k");
    let (_, other) = keypair(&env, "other");
    let damaged = format!("{}{other}", &pair[..64]);
    let said = "its last 64 hex digits are not the public key of its first 64 \
                (a damaged key: make a new one with `cachier keygen`)\n";
    let mut cmd = env.run_sh(&[], &counted("ran\n"));
    cmd.env("CACHIER_SIGNING_KEY", &damaged);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.stdout, b"");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("cachier: CACHIER_SIGNING_KEY: {said}")
    );
    // The same text in a key file: the file is named, never its text.
    std::fs::write(env.path("k"), format!("{damaged}\n")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        format!("signing_key_file = \"{}\"\n", env.path("k").display()),
    )
    .unwrap();
    let out = env.run_sh(&[], &counted("ran\n")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let all = String::from_utf8([out.stdout, out.stderr.clone()].concat()).unwrap();
    assert_eq!(
        all,
        format!(
            "cachier: signing_key_file {}: {said}",
            env.path("k").display()
        )
    );
    // No 12 digits of the seed in a row, anywhere.
    assert!((0..=52).all(|at| !all.contains(&pair[at..at + 12])));
    assert_eq!(env.runs(), 0);
    assert_eq!(env.json(&["ls", "--json"]).as_array().unwrap().len(), 0);
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let env = Env::file();
    keypair(&env, "k");
    let path = env.path("k");
    std::fs::write(
        env.path("config.toml"),
        format!("signing_key_file = \"{}\"\n", path.display()),
    )
    .unwrap();
    env.run_sh(&[], "echo signed")
        .assert()
        .code(0)
        .stdout("signed\n");
    let listed = env.json(&["ls", "--json"]);
    let by = listed[0]["signed_by"].as_str().unwrap().to_string();
    assert!(by.starts_with("ed25519:") && by.len() == 24, "{by}");
    let shown = env.stdout(&["show", &listed[0]["key"].as_str().unwrap()[..12]]);
    assert!(shown.contains(&format!("signed by  {by}\n")), "{shown}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    env.run_sh(&[], "echo signed").assert().code(2).stdout("").stderr(format!(
        "cachier: signing_key_file {}: others may read or write it (mode 640); run chmod 600 on it\n",
        path.display()
    ));
}

#[test]
fn import_refuses_unsigned_entries_unless_told_to_sign_them() {
    let env = Env::file();
    let (seed, public) = keypair(&env, "k");
    env.run_sh(&[], "echo one").assert().stdout("one\n");
    env.run_sh(&[], "echo two").assert().stdout("two\n");
    let (dump, _) = export(&env, &[]);
    env.cachier(&["clear"]).assert().code(0);
    let signed = |args: &[&str]| {
        let mut cmd = env.cachier(args);
        cmd.env("CACHIER_SIGNING_KEY", &seed)
            .env("CACHIER_TRUSTED_KEYS", &public);
        cmd
    };
    let out = feed(&env, signed(&["import"]), &dump);
    assert_eq!(out.status.code(), Some(0));
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(
        said.starts_with("cachier: imported 0 entries")
            && said.ends_with(
                ", refused 2 entries not signed by a trusted key (import --sign signs them with your key)\n"
            ),
        "{said}"
    );
    assert_eq!(env.json(&["ls", "--json"]).as_array().unwrap().len(), 0);
    let out = feed(&env, signed(&["import", "--sign"]), &dump);
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(
        said.ends_with(", signed 2 entries with your key\n"),
        "{said}"
    );
    let mut hit = env.run_sh(&[], "echo one");
    hit.env("CACHIER_TRUSTED_KEYS", &public);
    hit.assert().code(0).stdout("one\n").stderr("");
    let out = feed(&env, env.cachier(&["import", "--sign"]), &dump);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "cachier: import --sign needs a signing key: set CACHIER_SIGNING_KEY or config signing_key_file\n"
    );
}

/// `cmd < DUMP`.
fn feed(env: &Env, mut cmd: Command, dump: &[u8]) -> Output {
    let path = env.path("import.dump");
    std::fs::write(&path, dump).unwrap();
    cmd.stdin(std::fs::File::open(path).unwrap());
    cmd.output().unwrap()
}
