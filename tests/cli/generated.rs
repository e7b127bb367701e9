//! Completions and man pages are generated from src/cli.rs and checked in;
//! this test regenerates them and fails on any difference. To refresh them
//! after changing the CLI: `UPDATE_GENERATED=1 cargo test generated`.
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::{Generator, Shell};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compare `bytes` with the checked-in file, or write it when asked to.
fn check(path: &Path, bytes: &[u8], stale: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    } else if std::fs::read(path).ok().as_deref() != Some(bytes) {
        stale.push(path.strip_prefix(root()).unwrap().display().to_string());
    }
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let mut stale = Vec::new();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let mut cmd = cachier::cli::Cli::command();
        let mut bytes = Vec::new();
        clap_complete::generate(shell, &mut cmd, "cachier", &mut bytes);
        let dir = root().join("completions");
        check(&dir.join(shell.file_name("cachier")), &bytes, &mut stale);
    }
    let mut cmd = cachier::cli::Cli::command();
    cmd.build();
    let mut pages = vec![("cachier".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        pages.push((
            format!("cachier-{}", sub.get_name()),
            sub.clone()
                .display_name(format!("cachier-{}", sub.get_name())),
        ));
    }
    for (name, page) in pages {
        let mut bytes = Vec::new();
        clap_mangen::Man::new(page).render(&mut bytes).unwrap();
        check(
            &root().join("man").join(format!("{name}.1")),
            &bytes,
            &mut stale,
        );
    }
    assert!(
        stale.is_empty(),
        "out of date (run `UPDATE_GENERATED=1 cargo test generated`): {stale:?}"
    );
}
