//! The `program` components: the content of the program when it is given by
//! path (`./slow.sh`), and of the script a known interpreter runs
//! (`python3 train.py`), so editing either is a miss, never a stale replay.
//!
//! Wrappers that run another program (`env` with its assignments,
//! `timeout`, `nice`, `nohup`, `time`, `uv run`, `poetry run`, `npx`,
//! `bundle exec`) are looked through, and are not keyed themselves. A
//! program found on `PATH` by name is keyed by name only (it is in the
//! argv): a fleet with slightly different builds of `curl` shares entries.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::hashcache::Stamp;
use super::hashing::{self, Found};
use super::{Component, interp};

/// Add a `program PATH` component for each file that stands for the program.
pub fn components(command: &[OsString], parts: &mut Vec<Component>) {
    let began = SystemTime::now();
    for (shown, path) in files(command) {
        let content = std::fs::metadata(&path)
            .ok()
            .filter(|m| m.is_file())
            .and_then(|meta| {
                let found = [Found {
                    stamp: Stamp::of(&meta),
                    path: path.clone(),
                }];
                hashing::hash_all(&found, || shard_name(&path), began)
                    .ok()
                    .map(|h| h[0])
            });
        let text = match &content {
            Some(hash) => format!("content {}", super::short_hash(hash)),
            // The command will fail to start; keyed as such.
            None => "not a readable file".to_string(),
        };
        let bytes = content.as_ref().map(|h| serde_bytes::Bytes::new(h));
        parts.push(super::component(&format!("program {shown}"), &bytes, text));
    }
}

/// The files whose content stands for `command`'s program: each as written
/// and as reached from the working directory.
pub fn files(command: &[OsString]) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut dir: Option<PathBuf> = None;
    let mut at = 0;
    while let Some(program) = command.get(at) {
        let text = program.to_string_lossy().into_owned();
        let name = Path::new(&text)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rest = &command[at + 1..];
        match wrapped(&name, rest, &mut dir) {
            Next::Program(n) => {
                at += 1 + n;
                continue;
            }
            Next::Script(n) => {
                if let Some(arg) = rest.get(n) {
                    let arg = arg.to_string_lossy().into_owned();
                    out.push((arg.clone(), reach(dir.as_deref(), &arg)));
                }
                return out;
            }
            Next::Nothing => return out,
            Next::NotWrapper => {}
        }
        if text.contains('/') {
            out.push((text.clone(), reach(dir.as_deref(), &text)));
        }
        if let Some(script) = interp::script(&name, rest, dir.as_deref()) {
            out.push(script);
        }
        return out;
    }
    out
}

fn reach(dir: Option<&Path>, arg: &str) -> PathBuf {
    dir.map_or_else(|| PathBuf::from(arg), |d| d.join(arg))
}

/// What follows a wrapper: the program it runs after skipping `n` arguments,
/// or a script to key at `n` (`uv run train.py`), or nothing to key.
enum Next {
    NotWrapper,
    Program(usize),
    Script(usize),
    Nothing,
}

fn wrapped(name: &str, args: &[OsString], dir: &mut Option<PathBuf>) -> Next {
    let arg = |i: usize| args.get(i).map(|a| a.to_string_lossy().into_owned());
    let word = |i: usize, w: &str| arg(i).as_deref() == Some(w);
    match name {
        "env" => env(args, dir),
        // timeout [OPTION] DURATION COMMAND
        "timeout" => match options(args, "sk", &["--signal", "--kill-after"]) {
            Some(n) if n < args.len() => Next::Program(n + 1),
            _ => Next::Nothing,
        },
        "nice" => options(args, "n", &["--adjustment"]).map_or(Next::Nothing, Next::Program),
        "nohup" => options(args, "", &[]).map_or(Next::Nothing, Next::Program),
        "time" => {
            options(args, "of", &["--output", "--format"]).map_or(Next::Nothing, Next::Program)
        }
        "uv" if word(0, "run") => uv_run(&args[1..], dir),
        "poetry" => {
            let Some(run) = (0..args.len()).find(|&i| word(i, "run")) else {
                return Next::Nothing;
            };
            let n = options(&args[run + 1..], "", &[]).unwrap_or(0);
            Next::Program(run + 1 + n)
        }
        "npx" => {
            if args.iter().any(|a| a == "-c" || a == "--call") {
                return Next::Nothing;
            }
            options(args, "p", &["--package"]).map_or(Next::Nothing, Next::Program)
        }
        "bundle" if word(0, "exec") => {
            options(&args[1..], "", &["--gemfile"]).map_or(Next::Nothing, |n| Next::Program(n + 1))
        }
        _ => Next::NotWrapper,
    }
}

/// `env [-i] [-u NAME] [-C DIR] [NAME=VALUE]... COMMAND`; `-S` splits a
/// string into a command line, which is not followed.
fn env(args: &[OsString], dir: &mut Option<PathBuf>) -> Next {
    let mut i = 0;
    while let Some(a) = args.get(i).map(|a| a.to_string_lossy()) {
        if a == "--" {
            i += 1;
            break;
        }
        let chdir = a
            .strip_prefix("--chdir=")
            .or_else(|| a.strip_prefix("-C").filter(|d| !d.is_empty()));
        if let Some(d) = chdir {
            *dir = Some(reach(dir.as_deref(), d));
        } else if a == "-C" || a == "--chdir" {
            let Some(d) = args.get(i + 1) else {
                return Next::Nothing;
            };
            *dir = Some(reach(dir.as_deref(), &d.to_string_lossy()));
            i += 1;
        } else if a.starts_with("-S") || a.starts_with("--split-string") {
            return Next::Nothing;
        } else if a == "-u" || a == "--unset" {
            i += 1;
        } else if !(a.starts_with('-') || a.contains('=')) {
            break;
        }
        i += 1;
    }
    if i < args.len() {
        Next::Program(i)
    } else {
        Next::Nothing
    }
}

/// `uv run [OPTIONS] COMMAND | SCRIPT.py`: uv runs a `.py` file with its Python.
fn uv_run(args: &[OsString], dir: &mut Option<PathBuf>) -> Next {
    const VALUES: &[&str] = &[
        "--with",
        "--with-editable",
        "--with-requirements",
        "--python",
        "--project",
        "--directory",
        "--package",
        "--extra",
        "--group",
        "--only-group",
        "--no-group",
        "--env-file",
        "--index",
        "--default-index",
        "--index-url",
        "--extra-index-url",
        "--find-links",
        "--index-strategy",
        "--keyring-provider",
        "--resolution",
        "--prerelease",
        "--fork-strategy",
        "--exclude-newer",
        "--link-mode",
        "--config-setting",
        "--refresh-package",
        "--reinstall-package",
        "--upgrade-package",
        "--no-build-package",
        "--no-binary-package",
        "--cache-dir",
        "--config-file",
        "--color",
        "--python-platform",
        "--allow-insecure-host",
    ];
    if args.iter().any(|a| a == "-m" || a == "--module") {
        return Next::Nothing;
    }
    for (i, a) in args.iter().enumerate() {
        let a = a.to_string_lossy();
        if let Some(d) = a.strip_prefix("--directory=") {
            *dir = Some(reach(dir.as_deref(), d));
        } else if a == "--directory"
            && let Some(d) = args.get(i + 1)
        {
            *dir = Some(reach(dir.as_deref(), &d.to_string_lossy()));
        }
    }
    let Some(n) = options(args, "pifCP", VALUES) else {
        return Next::Nothing;
    };
    let first = args[n].to_string_lossy();
    let is_py = first.ends_with(".py") || first.ends_with(".pyw");
    if is_py && std::fs::metadata(reach(dir.as_deref(), &first)).is_ok_and(|m| m.is_file()) {
        return Next::Script(n + 1);
    }
    Next::Program(n + 1)
}

/// Skip leading options (`value`: short ones taking a value, `long`: long
/// ones taking one unless given with `=`); the index of the first other
/// argument, if any.
fn options(args: &[OsString], value: &str, long: &[&str]) -> Option<usize> {
    let mut i = 0;
    while let Some(a) = args.get(i).map(|a| a.to_string_lossy()) {
        if a == "--" {
            return (i + 1 < args.len()).then_some(i + 1);
        }
        if let Some(l) = a.strip_prefix("--") {
            if long.iter().any(|f| f[2..] == *l) {
                i += 1;
            }
        } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            // `-n 5` takes the next argument, `-n5` or `-10` do not.
            if short.len() == 1 && value.contains(short) {
                i += 1;
            }
        } else {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The hash-cache shard of one program file (read through the cache only
/// when it is big, such as an interpreter's binary).
fn shard_name(path: &Path) -> String {
    let place = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let host = rustix::system::uname();
    let mut h = blake3::Hasher::new();
    h.update(b"program\0");
    h.update(host.nodename().to_bytes());
    h.update(b"\0");
    h.update(std::os::unix::ffi::OsStrExt::as_bytes(place.as_os_str()));
    h.finalize().to_hex()[..32].to_string()
}
