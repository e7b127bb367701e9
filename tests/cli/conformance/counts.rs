//! Conformance cases: Export and import, and the counters stats keeps.
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

/// What `export` adds for a stack: how many entries came from each tier
/// (all from the first, which holds every entry).
pub(super) fn from_tiers(env: &Env, n: usize) -> String {
    let parts: Vec<String> = env
        .backend
        .tier_names()
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{} from {t}", if i == 0 { n } else { 0 }))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

pub(super) fn export_import_round_trips(env: &Env) {
    use crate::dump::{as_in, export, human, import};
    let mut blob: Vec<u8> = (0..=255u8).cycle().take(256 * 300).collect();
    blob.extend_from_slice(b"\xff\xfe\x00not utf-8 \xc3\x28");
    std::fs::write(env.path("blob"), &blob).unwrap();
    let cases: [(&[&str], String); 3] = [
        (
            &[],
            format!("{}; printf 'to stderr\\n' >&2", counted("hello\n")),
        ),
        (
            &["--cache-failures"],
            format!("{}; exit 3", counted("three")),
        ),
        (&[], "echo $$ >> \"$COUNT\"; cat blob; cat blob >&2".into()),
    ];
    let first: Vec<_> = cases
        .iter()
        .map(|(flags, script)| env.run_sh(flags, script).output().unwrap())
        .collect();
    assert_eq!(first[2].stdout, blob);
    assert_eq!(env.runs(), 3);
    let (dump, said) = export(env, &[]);
    let size = human(dump.len());
    assert_eq!(
        said,
        format!(
            "cachier: exported 3 entries ({size}){}\n",
            from_tiers(env, 3)
        )
    );

    let other = Env::new(env.backend);
    let out = import(&other, &dump);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("cachier: imported 3 entries ({size})\n")
    );
    assert_eq!(other.stat("total", "entries"), 3);
    // Hits there, byte for byte, and nothing ran again.
    for ((flags, script), then) in cases.iter().zip(&first) {
        let now = as_in(env, other.run_sh(flags, script)).output().unwrap();
        assert_eq!(now.status.code(), then.status.code(), "{script}");
        assert!(now.stdout == then.stdout, "stdout of {script}");
        assert!(now.stderr == then.stderr, "stderr of {script}");
    }
    assert_eq!(env.runs(), 3);
    // The entries kept their age.
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    let (dump, _) = export(env, &[]);
    let again = Env::new(env.backend);
    assert_eq!(import(&again, &dump).status.code(), Some(0));
    as_in(env, again.run_sh(&["--stale-after", "1h"], &cases[0].1))
        .assert()
        .stdout("hello\n");
    assert_eq!(env.runs(), 4, "an aged entry is stale after import too");
}

pub(super) fn counters_follow_hits_misses_and_entries(env: &Env) {
    let script = counted("x");
    for _ in 0..3 {
        env.run_sh(&[], &script).assert().stdout("x");
    }
    env.run_sh(&["--name", "other"], &counted("y"))
        .assert()
        .stdout("y");
    assert_eq!(
        (
            env.stat("sh", "entries"),
            env.stat("sh", "hits"),
            env.stat("sh", "misses")
        ),
        (1, 2, 1)
    );
    assert!(env.stat("sh", "bytes") > 0);
    let stats = env.json(&["stats", "--json"]);
    assert_eq!(
        stats["namespaces"]["sh"]["hit_ratio"].as_f64(),
        Some(2.0 / 3.0)
    );
    assert_eq!(stats["total"]["entries"].as_u64(), Some(2));
    assert_eq!(stats["total"]["misses"].as_u64(), Some(2));
    let only = env.json(&["stats", "--json", "--name", "other"]);
    assert_eq!(only["total"]["entries"].as_u64(), Some(1));
    assert!(only["namespaces"]["sh"].is_null());
    // The human table: a header, one row per namespace, a total.
    let table = env.stdout(&["stats"]);
    let first: Vec<&str> = table
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    // A stack adds a table of each tier's totals.
    let mut want = vec!["NAMESPACE", "other", "sh", "total"];
    let tiers = env.backend.tier_names();
    if !tiers.is_empty() {
        want.extend(["", "TIER"]);
        want.extend(tiers);
    }
    assert_eq!(first, want, "{table}");
}

/// `clear`'s report; a stack adds what went from each tier, if anything went.
pub(super) fn removed(env: &Env, n: usize) -> predicates::str::RegexPredicate {
    let noun = |n: usize| if n == 1 { "entry" } else { "entries" };
    let size = r"\((0 B|\d+ B|\d+\.\d [KM]iB)\)";
    let tiers: Vec<String> = env
        .backend
        .tier_names()
        .iter()
        .map(|t| format!("{t} {n} {} {size}", noun(n)))
        .collect();
    let per_tier = if tiers.is_empty() || n == 0 {
        String::new()
    } else {
        format!(": {}", tiers.join(", "))
    };
    predicates::str::is_match(format!("^removed {n} {} {size}{per_tier}\n$", noun(n))).unwrap()
}
