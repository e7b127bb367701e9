//! The lean parse against clap: equal wherever the lean parse answers.
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::{CommandFactory, Parser};
use proptest::prelude::*;

use super::{Flag, parse};
use crate::cli::Cli;
use crate::store::registry;

fn os(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

/// clap's parse of `args` as text to compare, or `None` if clap refuses.
fn by_clap(args: &[OsString]) -> Option<String> {
    Cli::try_parse_from(args).ok().map(|cli| format!("{cli:?}"))
}

/// Where the lean parse answers, its answer is clap's.
fn agrees(args: &[OsString]) -> Result<(), String> {
    match parse(args) {
        None => Ok(()),
        Some(cli) if by_clap(args) == Some(format!("{cli:?}")) => Ok(()),
        Some(cli) => Err(format!(
            "{args:?}: lean {cli:?}, clap {:?}",
            Cli::try_parse_from(args)
        )),
    }
}

#[test]
fn common_run_lines_take_the_lean_path_and_match_clap() {
    let lines: &[&[&str]] = &[
        &["cachier", "run", "--", "./slow.sh"],
        &["cachier", "run", "echo", "hi", "--", "-x"],
        &["cachier", "run", "--stale-after", "1h", "--", "make", "-j4"],
        &[
            "cachier",
            "run",
            "--stale-after=90s",
            "--max-age=2d",
            "--",
            "x",
        ],
        &[
            "cachier",
            "run",
            "-v",
            "--backend",
            "redis",
            "--redis-url",
            "redis://h/0",
            "--",
            "x",
        ],
        &[
            "cachier", "run", "--input", "src", "--input", ".", "--env", "HOME", "--", "x",
        ],
        &[
            "cachier",
            "run",
            "--output",
            "dist",
            "--output",
            "!dist/*.map",
            "--",
            "npm",
            "run",
            "b",
        ],
        &["cachier", "run", "--stale-if-error", "--", "x"],
        &[
            "cachier",
            "run",
            "--stale-if-error=10m",
            "--next-time",
            "--",
            "x",
        ],
        &[
            "cachier",
            "run",
            "--cache-exit-codes",
            "0,1",
            "--cache-exit-codes=3",
            "--",
            "x",
        ],
        &[
            "cachier",
            "run",
            "--entry-size-limit",
            "50M",
            "--read-only",
            "--strict",
            "--",
            "x",
        ],
        &[
            "cachier",
            "run",
            "--cache-dir",
            "/tmp/c",
            "--name",
            "n",
            "--key",
            "v1",
            "--",
            "x",
        ],
        &[
            "cachier",
            "run",
            "--no-ignore",
            "--no-cwd",
            "--no-program",
            "--stdin",
            "--",
            "x",
        ],
        &["cachier", "run", "--", "--"],
        &["cachier", "run", "--", "x", "--", "y"],
        &["cachier", "--backend", "file", "run", "--", "x"],
        &[
            "cachier",
            "-v",
            "--redis-url=redis://h/0",
            "--backend",
            "redis",
            "--cache-dir",
            "/tmp/c",
            "--read-only",
            "run",
            "--stale-after",
            "1h",
            "--",
            "x",
        ],
    ];
    for line in lines {
        let args = os(line);
        assert!(parse(&args).is_some(), "not taken: {line:?}");
        if let Err(e) = agrees(&args) {
            panic!("{e}");
        }
    }
}

#[test]
fn what_clap_must_judge_is_left_to_it() {
    let lines: &[&[&str]] = &[
        &["cachier", "run"],
        &["cachier", "run", "--"],
        &["cachier", "run", "--help"],
        &["cachier", "run", "--version"],
        &["cachier", "--stale-after", "1h", "run", "--", "x"],
        &["cachier", "--backend", "file", "ls"],
        &["cachier", "ls", "run", "--", "x"],
        &[
            "cachier",
            "--backend",
            "a",
            "run",
            "--backend",
            "b",
            "--",
            "x",
        ],
        &["cachier", "run", "--stale-after", "5x", "--", "x"],
        &[
            "cachier",
            "run",
            "--stale-after",
            "1h",
            "--stale-after",
            "2h",
            "--",
            "x",
        ],
        &["cachier", "run", "-v", "--verbose", "--", "x"],
        &["cachier", "run", "--stale-if-error=", "--", "x"],
        &["cachier", "run", "--name", "--", "x"],
        &["cachier", "run", "--strict=yes", "--", "x"],
        &["cachier", "run", "-vx", "--", "x"],
        &["cachier", "run", "--stale-afte", "1h", "--", "x"],
        &["cachier", "key", "--", "x"],
    ];
    for line in lines {
        assert!(parse(&os(line)).is_none(), "taken: {line:?}");
    }
}

#[test]
fn every_flag_of_run_is_known_with_its_arity() {
    let mut cli = Cli::command();
    cli.build();
    let Some(run) = cli.find_subcommand("run") else {
        panic!("clap has no run subcommand");
    };
    let mut seen = Vec::new();
    for arg in run.get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        if matches!(long, "help" | "version") {
            continue;
        }
        let flag = Flag::named(long).unwrap_or_else(|| panic!("--{long} unknown"));
        let takes = arg.get_num_args().is_some_and(|n| n.takes_values());
        assert_eq!(!flag.is_bool(), takes, "--{long}");
        seen.push(flag);
    }
    for (name, flag) in super::NAMES {
        assert!(seen.contains(flag), "--{name} is not a flag of run");
    }
    let backend = registry::params().filter(|p| p.flag.is_some()).count();
    assert_eq!(seen.len(), super::NAMES.len() + backend);
}

/// Pieces a `run` line is made of: every flag with a good value, and junk.
fn piece() -> impl Strategy<Value = Vec<OsString>> {
    let good = |v: &str| v.to_string();
    let mut pieces: Vec<Vec<String>> = super::NAMES
        .iter()
        .map(|&(n, flag)| {
            let value = match flag {
                Flag::StaleAfter | Flag::MaxAge | Flag::WaitForCalcTimeout => Some("1h"),
                Flag::EntrySizeLimit => Some("50M"),
                Flag::CacheExitCodes => Some("0,1"),
                Flag::Backend => Some("redis"),
                Flag::StaleIfError => None,
                f if f.is_bool() => None,
                _ => Some("src"),
            };
            [format!("--{n}")]
                .into_iter()
                .chain(value.map(good))
                .collect()
        })
        .collect();
    pieces.extend(registry::params().filter_map(|p| {
        let value = match p.kind {
            super::Kind::Text => "redis://127.0.0.1/0",
            super::Kind::Size => "1M",
            super::Kind::Duration => "2s",
        };
        Some(vec![format!("--{}", p.flag?), good(value)])
    }));
    let junk = [
        "1h",
        "0",
        "5x",
        "",
        "50M",
        "2P",
        "0,1",
        "1,,2",
        "x=y",
        "--",
        "echo",
        "-",
        "-v",
        "-vv",
        "--help",
        "--version",
        "--bogus",
        "run",
        "ls",
        "forever",
        "/tmp/d",
        "a b",
        "101y",
    ];
    pieces.extend(junk.iter().map(|j| vec![good(j)]));
    pieces.extend(
        [
            "stale-after",
            "stale-if-error",
            "cache-exit-codes",
            "strict",
            "input",
            "name",
        ]
        .iter()
        .flat_map(|n| ["1h", "", "0,2", "forever"].map(|v| vec![format!("--{n}={v}")])),
    );
    let os = |p: Vec<String>| p.into_iter().map(OsString::from).collect::<Vec<_>>();
    prop_oneof![
        20 => prop::sample::select(pieces).prop_map(os),
        1 => Just(vec![OsString::from_vec(b"\xffbin".to_vec())]),
        1 => Just(vec![OsString::from_vec(b"--input=\xff".to_vec())]),
        1 => Just(vec![OsString::from("--cache-dir"), OsString::from_vec(b"/t\xff".to_vec())]),
    ]
}

/// How a line ends: the command after `--`, the command alone, or nothing.
fn tail() -> impl Strategy<Value = Vec<OsString>> {
    prop::sample::select(vec![
        vec!["--", "echo", "hi"],
        vec!["echo", "--", "-v"],
        vec!["--"],
        vec![],
        vec!["--", "--stale-after", "1h"],
    ])
    .prop_map(|t| os(&t))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn the_lean_parse_never_disagrees_with_clap(
        before in prop::collection::vec(piece(), 0..4),
        run in any::<bool>(),
        pieces in prop::collection::vec(piece(), 0..6),
        tail in tail(),
    ) {
        // Flags (or junk) before `run` too: clap takes global flags there.
        let mut args = os(&["cachier"]);
        args.extend(before.into_iter().flatten());
        args.extend(run.then(|| OsString::from("run")));
        args.extend(pieces.into_iter().flatten());
        args.extend(tail);
        prop_assert!(agrees(&args).is_ok(), "{}", agrees(&args).unwrap_err());
    }
}
