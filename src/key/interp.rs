//! Known interpreters, and which of their arguments is the script they run.
//!
//! The script is the first argument that does not start with `-` and names
//! an existing regular file (`python3 -W error train.py` runs `train.py`),
//! after skipping the values of options that take one (`-W error`); an
//! option that means inline code, a module or standard input (`-c`, `-e`,
//! `-m`, `-`) means there is no script.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// How one interpreter's command line reads.
struct Interp {
    /// Base names (a version suffix such as `3.12` is dropped first).
    names: &'static [&'static str],
    /// Short options meaning inline code, a module or stdin: no script.
    inline: &'static str,
    /// Short options whose value is the next argument unless attached.
    value: &'static str,
    /// Short options whose (optional) value can only be attached.
    attached: &'static str,
    /// A short option whose value is the script (`php -f x.php`).
    script: &'static str,
    inline_long: &'static [&'static str],
    value_long: &'static [&'static str],
    /// A first word meaning inline code (`deno eval`).
    inline_word: &'static [&'static str],
}

const fn interp(
    names: &'static [&'static str],
    inline: &'static str,
    value: &'static str,
) -> Interp {
    Interp {
        names,
        inline,
        value,
        attached: "",
        script: "",
        inline_long: &[],
        value_long: &[],
        inline_word: &[],
    }
}

const JS_EVAL: &[&str] = &["--eval", "--print"];
const JS_VALUES: &[&str] = &["--require", "--import", "--loader", "--experimental-loader"];

const TABLE: &[Interp] = &[
    Interp {
        value_long: &["--rcfile", "--init-file"],
        ..interp(
            &["sh", "bash", "zsh", "dash", "ksh", "mksh", "ash"],
            "cs",
            "oO",
        )
    },
    Interp {
        inline_long: &["--command"],
        value_long: &[
            "--init-command",
            "--debug",
            "--debug-output",
            "--features",
            "--profile",
        ],
        ..interp(&["fish"], "c", "Cdofp")
    },
    Interp {
        value_long: &["--check-hash-based-pycs"],
        ..interp(&["python", "pypy"], "cm", "WX")
    },
    Interp {
        inline_long: JS_EVAL,
        value_long: JS_VALUES,
        ..interp(&["node", "nodejs", "tsx", "ts-node"], "ep", "rC")
    },
    Interp {
        value_long: &["--config", "--import-map", "--lock", "--location", "--cert"],
        inline_word: &["eval", "repl"],
        ..interp(&["deno"], "", "cL")
    },
    Interp {
        inline_long: JS_EVAL,
        value_long: &["--preload", "--config"],
        inline_word: &["x", "repl"],
        ..interp(&["bun"], "ep", "rc")
    },
    interp(&["ruby"], "e", "ICrEF"),
    Interp {
        attached: "MmCdDFilx0",
        ..interp(&["perl"], "eE", "I")
    },
    Interp {
        script: "f",
        ..interp(&["php"], "rBRE", "cdz")
    },
    interp(&["Rscript"], "e", ""),
    Interp {
        inline_long: JS_EVAL,
        value_long: &["--load", "--threads", "--procs", "--sysimage"],
        attached: "Og",
        ..interp(&["julia"], "eE", "tpJCL")
    },
    interp(&["lua", "luajit"], "e", "l"),
    interp(&["tclsh", "wish"], "", ""),
    Interp {
        inline_long: &["--eval"],
        ..interp(&["elixir"], "e", "r")
    },
];

/// The interpreter called `name`, if it is a known one.
fn find(name: &str) -> Option<&'static Interp> {
    let bare = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    TABLE
        .iter()
        .find(|i| i.names.contains(&bare) || i.names.contains(&name))
}

/// The script `name` runs given `args`, as written, with the path it has
/// from the working directory (`dir` joined, after `env -C dir`).
pub fn script(name: &str, args: &[OsString], dir: Option<&Path>) -> Option<(String, PathBuf)> {
    let interp = find(name)?;
    let is_file = |a: &str| {
        let path = dir.map_or_else(|| PathBuf::from(a), |d| d.join(a));
        std::fs::metadata(&path)
            .is_ok_and(|m| m.is_file())
            .then(|| (a.to_string(), path))
    };
    let mut positional = 0;
    let mut k = 0;
    while k < args.len() {
        let a = args[k].to_string_lossy();
        k += 1;
        if a == "--" {
            return args.get(k).and_then(|s| is_file(&s.to_string_lossy()));
        }
        if a == "-" {
            return None;
        }
        if let Some(long) = a.strip_prefix("--") {
            let flag = long.split('=').next().unwrap_or(long);
            let flag = format!("--{flag}");
            if interp.inline_long.contains(&flag.as_str()) {
                return None;
            }
            if interp.value_long.contains(&flag.as_str()) && !long.contains('=') {
                k += 1;
            }
            continue;
        }
        if let Some(cluster) = a.strip_prefix('-') {
            for (at, ch) in cluster.char_indices() {
                let rest = &cluster[at + ch.len_utf8()..];
                if interp.inline.contains(ch) {
                    return None;
                }
                if interp.script.contains(ch) {
                    return if rest.is_empty() {
                        args.get(k).and_then(|s| is_file(&s.to_string_lossy()))
                    } else {
                        is_file(rest)
                    };
                }
                if interp.value.contains(ch) {
                    if rest.is_empty() {
                        k += 1;
                    }
                    break;
                }
                if interp.attached.contains(ch) {
                    break;
                }
            }
            continue;
        }
        positional += 1;
        if positional == 1 && interp.inline_word.contains(&a.as_ref()) {
            return None;
        }
        if let Some(found) = is_file(&a) {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script_of(name: &str, args: &[&str], files: &[&str]) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        script(name, &args, Some(dir.path())).map(|(shown, _)| shown)
    }

    #[test]
    fn the_script_is_the_first_existing_file_after_options() {
        let f = &["train.py", "error", "x.sh", "x.php", "data.csv"];
        assert_eq!(
            script_of("python3", &["-W", "error", "train.py"], f).as_deref(),
            Some("train.py")
        );
        assert_eq!(
            script_of("python3.12", &["-u", "train.py", "data.csv"], f).as_deref(),
            Some("train.py")
        );
        assert_eq!(
            script_of("bash", &["-e", "-o", "pipefail", "x.sh"], f).as_deref(),
            Some("x.sh")
        );
        assert_eq!(
            script_of("php", &["-f", "x.php"], f).as_deref(),
            Some("x.php")
        );
        assert_eq!(
            script_of("bash", &["-C", "x.sh"], f).as_deref(),
            Some("x.sh")
        );
        assert_eq!(
            script_of("python3", &["-Werror::DeprecationWarning", "train.py"], f).as_deref(),
            Some("train.py")
        );
        assert_eq!(
            script_of("deno", &["run", "-A", "train.py"], f).as_deref(),
            Some("train.py")
        );
    }

    #[test]
    fn inline_code_modules_and_stdin_mean_no_script() {
        let f = &["x.sh", "train.py", "pkg"];
        assert_eq!(script_of("sh", &["-c", "echo", "x.sh"], f), None);
        assert_eq!(script_of("bash", &["-ec", "echo", "x.sh"], f), None);
        assert_eq!(script_of("bash", &["-s", "x.sh"], f), None);
        assert_eq!(script_of("fish", &["-C", "x.sh", "-c", "x.sh"], f), None);
        assert_eq!(script_of("python3", &["-m", "pkg"], f), None);
        assert_eq!(script_of("python3", &["-mpkg", "train.py"], f), None);
        assert_eq!(script_of("python3", &["-", "train.py"], f), None);
        assert_eq!(script_of("node", &["--eval=1", "x.sh"], f), None);
        assert_eq!(script_of("perl", &["-e", "1", "x.sh"], f), None);
        assert_eq!(script_of("deno", &["eval", "x.sh"], f), None);
        assert_eq!(script_of("python3", &["missing.py"], f), None);
        assert_eq!(script_of("curl", &["x.sh"], f), None, "not an interpreter");
    }
}
