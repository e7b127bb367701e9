//! The key: what makes two invocations "the same", as named, hashed components.
//!
//! Each component's value is CBOR-encoded (length-prefixed, so `a b` and
//! `"a b"` differ) and hashed with BLAKE3; the key is the BLAKE3 of the key
//! format version and the ordered list of (label, component hash).
mod env;
mod hashcache;
mod hashing;
mod input;
mod interp;
mod listing;
mod program;
#[cfg(test)]
mod props;
mod walk;

pub use walk::Skip;
#[cfg(target_os = "linux")]
pub use walk::builder as walk_builder;

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::Exit;

/// Bump when the derivation changes: old entries then simply miss.
///
/// 2: the program's and script's content (`program PATH`), one component
/// per `--input` (ignore-aware walks), file hashes framed by hand.
pub const KEY_FORMAT: u32 = 2;

/// A 256-bit key, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl Key {
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The short form shown in messages.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.short())
    }
}

/// One named part of the key. `shown` is for `--explain` only and never
/// holds an environment value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub label: String,
    #[serde(with = "serde_bytes")]
    pub hash: [u8; 32],
    #[serde(skip)]
    pub shown: String,
}

/// What makes the key besides the command line, as plain data: `cmd/`
/// builds it from the flags, so the derivation knows no command-line parser.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    /// Environment variables by name or glob (`AWS_*`).
    pub env: Vec<String>,
    /// Every variable but the volatile ones.
    pub all_env: bool,
    /// Files, directories and globs whose contents count.
    pub inputs: Vec<OsString>,
    /// `--output` as written: each is a component, and what they name
    /// (checked by `crate::outputs`) is left out of the `--input` walks.
    pub outputs: Vec<OsString>,
    /// Standard input, read whole.
    pub stdin: bool,
    /// Extra material such as a commit.
    pub extra: Vec<String>,
    /// The namespace; else the program's base name.
    pub name: Option<String>,
    /// Leave the working directory out.
    pub no_cwd: bool,
    /// Leave the program's and script's content out (they stay in the argv
    /// by name).
    pub no_program: bool,
    /// Walk `--input` directories and globs whole: no ignore files, `.git/` too.
    pub no_ignore: bool,
    /// Ask the daemon's tree watch before walking a large `--input` tree.
    pub watch: bool,
}

/// Everything derived from a command line and its options.
pub struct KeyMaterial {
    pub key: Key,
    pub namespace: String,
    pub argv: Vec<OsString>,
    pub components: Vec<Component>,
    /// The spooled `--stdin` bytes, rewound, to feed the command.
    pub stdin: Option<File>,
}

impl KeyMaterial {
    /// The hash of the argv component, used to find earlier entries of the same command.
    pub fn argv_hash(&self) -> Option<[u8; 32]> {
        self.components
            .iter()
            .find(|c| c.label == "argv")
            .map(|c| c.hash)
    }
}

/// The namespace: `--name`, or the program's base name.
pub fn namespace(opts: &KeySpec, command: &[OsString]) -> String {
    if let Some(name) = &opts.name {
        return name.clone();
    }
    let program = command.first().map(std::path::Path::new);
    program
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Derive the key. Reads every `--input` and, with `--stdin`, all of stdin.
pub fn derive(args: &KeySpec, command: &[OsString]) -> Result<KeyMaterial> {
    let namespace = namespace(args, command);
    let mut parts = Vec::new();
    parts.push(component("name", &namespace, namespace.clone()));
    let argv: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
    let shown = command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    parts.push(component("argv", &argv, shown));
    if !args.no_program {
        program::components(command, &mut parts);
    }
    if !args.no_cwd {
        let cwd = std::env::current_dir().map_err(|e| {
            Exit::usage(format!(
                "cannot read the working directory ({e}); use --no-cwd"
            ))
        })?;
        parts.push(component(
            "cwd",
            cwd.as_os_str().as_bytes(),
            cwd.display().to_string(),
        ));
    }
    env::components(&args.env, args.all_env, &mut parts)?;
    let outputs = crate::outputs::Declared::parse(&args.outputs)?;
    let walking = input::Walking {
        no_ignore: args.no_ignore,
        skip: (!outputs.is_empty()).then(|| outputs.walk_filter()),
        outputs: &args.outputs,
        watch: args.watch,
    };
    for path in &args.inputs {
        input::components(path, &walking, &mut parts)?;
    }
    for spec in &args.outputs {
        let text = spec.to_string_lossy();
        parts.push(component(
            &format!("output {text}"),
            serde_bytes::Bytes::new(spec.as_bytes()),
            "declared".into(),
        ));
    }
    let stdin = if args.stdin {
        let (file, hash) = spool_stdin()?;
        parts.push(Component {
            label: "stdin".into(),
            hash,
            shown: "content".into(),
        });
        Some(file)
    } else {
        None
    };
    for (i, text) in args.extra.iter().enumerate() {
        parts.push(component(&format!("key {}", i + 1), text, text.clone()));
    }
    let key = combine(&parts);
    Ok(KeyMaterial {
        key,
        namespace,
        argv: command.to_vec(),
        components: parts,
        stdin,
    })
}

/// The hash of one component's CBOR-encoded value.
pub fn component<T: Serialize + ?Sized>(label: &str, value: &T, shown: String) -> Component {
    Component {
        label: label.to_string(),
        hash: hash_cbor(value),
        shown,
    }
}

fn combine(parts: &[Component]) -> Key {
    Key(*blake3::hash(&key_frame(parts)).as_bytes())
}

/// The bytes the key is the hash of: the key format and each component's
/// label and hash, in order.
fn key_frame(parts: &[Component]) -> Vec<u8> {
    let list: Vec<(&str, &serde_bytes::Bytes)> = parts
        .iter()
        .map(|c| (c.label.as_str(), serde_bytes::Bytes::new(&c.hash)))
        .collect();
    frame(&(KEY_FORMAT, list))
}

fn hash_cbor<T: Serialize + ?Sized>(value: &T) -> [u8; 32] {
    *blake3::hash(&frame(value)).as_bytes()
}

/// The bytes a value is hashed as: its CBOR, which gives every string and
/// list its length, so no two different values share them.
fn frame<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Encode whole, then hash once: the encoder writes in tiny pieces.
    let mut bytes = Vec::with_capacity(256);
    // Encoding into a Vec cannot fail.
    let _ = ciborium::into_writer(value, &mut bytes);
    bytes
}

/// Copy stdin into an anonymous temp file while hashing it: constant memory.
fn spool_stdin() -> Result<(File, [u8; 32])> {
    use std::io::{Seek, Write};
    let mut file =
        tempfile::tempfile().context("cannot create a temp file for --stdin; check TMPDIR")?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut stdin = std::io::stdin().lock();
    loop {
        let n = match std::io::Read::read(&mut stdin, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Exit::usage(format!("cannot read stdin for --stdin: {e}"))),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .context("cannot spool stdin; check TMPDIR has room")?;
    }
    file.rewind()?;
    Ok((file, *hasher.finalize().as_bytes()))
}

/// A short hex rendering of a component hash for `--explain`.
pub fn short_hash(hash: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*hash).to_hex()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive_for(cmd: &[&str]) -> KeyMaterial {
        let opts = KeySpec {
            no_cwd: true,
            ..KeySpec::default()
        };
        let command: Vec<OsString> = cmd.iter().map(OsString::from).collect();
        derive(&opts, &command).unwrap()
    }

    #[test]
    fn framing_separates_arguments() {
        let split = derive_for(&["echo", "a", "b"]).key;
        let joined = derive_for(&["echo", "a b"]).key;
        assert_ne!(split, joined);
    }

    #[test]
    fn key_is_stable() {
        // Changing this value means old caches stop hitting: bump KEY_FORMAT instead.
        let key = derive_for(&["echo", "hi"]).key;
        assert_eq!(key, derive_for(&["echo", "hi"]).key);
        assert_eq!(key.hex().len(), 64);
    }

    #[test]
    fn namespace_is_program_base_name() {
        let command = ["/usr/bin/curl", "-s"].map(OsString::from);
        assert_eq!(namespace(&KeySpec::default(), &command), "curl");
    }
}
