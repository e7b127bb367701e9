//! What a stored result is: its metadata, its output body, and how a body is verified.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::key::{Component, Key, KeyMaterial};
pub use crate::outputs::Outputs;
use crate::version;
pub use crate::version::{FORMAT, NewerFormat};

mod body;
pub use body::{Body, Corrupt};

/// Which of the command's output streams a piece of output belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

/// A stretch of output from one stream, in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub stream: Stream,
    pub len: u64,
}

/// How an entry's body is stored ([`crate::store`]'s compress module):
/// servers get zstd by default, local stores raw bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// The output's bytes as they came.
    #[default]
    Raw,
    /// One zstd stream of stdout then stderr.
    Zstd,
}

impl Encoding {
    pub fn is_raw(&self) -> bool {
        *self == Encoding::Raw
    }
}

/// Everything an entry records besides its output bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub key: Key,
    pub namespace: String,
    pub argv: Vec<ByteBuf>,
    pub components: Vec<Component>,
    pub exit_code: i32,
    pub stdout_len: u64,
    pub stderr_len: u64,
    /// Arrival order of the output, neighbours of one stream merged.
    pub runs: Vec<Run>,
    pub duration_ms: u64,
    pub created_ms: u64,
    pub host: String,
    pub pid: u32,
    pub user: String,
    #[serde(with = "serde_bytes")]
    pub stdout_blake3: [u8; 32],
    #[serde(with = "serde_bytes")]
    pub stderr_blake3: [u8; 32],
    /// The entry's format version ([`FORMAT`]); entries from before
    /// versions were recorded are version 1, and version 1 is not written
    /// out, so its bytes are what they always were.
    #[serde(default = "version::first", skip_serializing_if = "version::is_first")]
    pub format: u32,
    /// The `--output` files, if any: an archive after stderr in the body
    /// (absent in entries made before outputs existed, and left out when
    /// there are none, so such an entry encodes as before).
    #[serde(default, skip_serializing_if = "Outputs::is_none")]
    pub outputs: Outputs,
    /// Who signed the rest of this metadata ([`crate::sign`]); absent
    /// from unsigned entries, so their encoding is as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<crate::sign::Seal>,
    /// How the store holds the body (set by the store as it commits; not
    /// signed: the checksums cover the raw bytes).
    #[serde(default, skip_serializing_if = "Encoding::is_raw")]
    pub encoding: Encoding,
}

/// A command's output as recorded: lengths and BLAKE3 of stdout and stderr,
/// and the arrival order.
pub struct Output {
    pub lens: [u64; 2],
    pub hashes: [[u8; 32]; 2],
    pub runs: Vec<Run>,
}

impl Meta {
    /// The metadata of an entry this process makes now.
    pub fn made_now(
        material: &KeyMaterial,
        exit_code: i32,
        output: Output,
        duration: Duration,
    ) -> Meta {
        use std::os::unix::ffi::OsStrExt;
        Meta {
            key: material.key,
            namespace: material.namespace.clone(),
            argv: material
                .argv
                .iter()
                .map(|a| ByteBuf::from(a.as_bytes()))
                .collect(),
            components: material.components.clone(),
            exit_code,
            stdout_len: output.lens[0],
            stderr_len: output.lens[1],
            runs: output.runs,
            duration_ms: duration.as_millis() as u64,
            created_ms: millis_since_epoch(SystemTime::now()),
            host: host(),
            pid: std::process::id(),
            user: std::env::var("USER")
                .unwrap_or_else(|_| rustix::process::getuid().as_raw().to_string()),
            stdout_blake3: output.hashes[0],
            stderr_blake3: output.hashes[1],
            format: FORMAT,
            outputs: Outputs::default(),
            seal: None,
            encoding: Encoding::Raw,
        }
    }

    /// Decode stored metadata and check it belongs under `key`. The error
    /// downcasts to [`Corrupt`] (discard it) or [`NewerFormat`] (leave it).
    pub fn decode(bytes: &[u8], key: &Key) -> anyhow::Result<Meta> {
        let bad = |why: &str| Corrupt {
            key: key.short(),
            why: why.to_string(),
        };
        let newer = |format: u32| NewerFormat {
            key: key.short(),
            format,
        };
        let meta: Meta = match ciborium::from_reader(bytes) {
            Ok(meta) => meta,
            // A newer format may have changed any field but its version.
            Err(_) => {
                return Err(match version::of(bytes) {
                    Some(format) if format > FORMAT => newer(format).into(),
                    _ => bad("unreadable metadata").into(),
                });
            }
        };
        if meta.format > FORMAT {
            return Err(newer(meta.format).into());
        }
        if &meta.key != key {
            return Err(bad("stored under the wrong key").into());
        }
        meta.check_lengths().map_err(bad)?;
        Ok(meta)
    }

    /// Whether the lengths agree, so that no sum or offset a reader or a
    /// replay computes from them can overflow: the two output lengths add
    /// up, and the runs cover each stream exactly. The body's checksums do
    /// not cover the metadata, so a damaged length is only caught here.
    pub fn check_lengths(&self) -> Result<(), &'static str> {
        if self
            .stdout_len
            .checked_add(self.stderr_len)
            .and_then(|n| n.checked_add(self.outputs.len))
            .is_none()
        {
            return Err("output lengths out of range");
        }
        let mut covered = [0u64; 2];
        for run in &self.runs {
            let sum = &mut covered[run.stream as usize];
            *sum = sum.checked_add(run.len).ok_or("output runs out of range")?;
        }
        if covered != [self.stdout_len, self.stderr_len] {
            return Err("output runs do not match the output lengths");
        }
        Ok(())
    }

    /// [`Meta::decode`], with the creation time the store keeps beside the
    /// metadata (a row's, a hash field's), which is authoritative.
    pub fn decode_at(bytes: &[u8], key: &Key, created_ms: u64) -> anyhow::Result<Meta> {
        let mut meta = Meta::decode(bytes, key)?;
        meta.created_ms = created_ms;
        Ok(meta)
    }

    /// Bytes of stdout, stderr and the outputs archive together: a body's
    /// length (checked when the metadata was decoded; saturating for one
    /// made here).
    pub fn body_len(&self) -> u64 {
        self.stdout_len
            .saturating_add(self.stderr_len)
            .saturating_add(self.outputs.len)
    }

    /// Where the outputs archive starts in the body.
    pub fn outputs_offset(&self) -> u64 {
        self.stdout_len.saturating_add(self.stderr_len)
    }

    pub fn created(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.created_ms)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms)
    }

    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.created()).unwrap_or_default()
    }

    /// The offset of each stream inside a body laid out stdout then stderr.
    pub fn offset(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Stdout => 0,
            Stream::Stderr => self.stdout_len,
        }
    }

    pub fn len(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Stdout => self.stdout_len,
            Stream::Stderr => self.stderr_len,
        }
    }
}

/// This machine's host name.
pub fn host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    millis_since_epoch(SystemTime::now())
}

pub fn millis_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a run did, for the counters behind `cachier stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A replay; `saved` is the recorded run time of the entry.
    Hit {
        saved: Duration,
    },
    Miss,
    /// A replay that first waited for another caller's run.
    Wait,
    /// A stale entry served under `--next-time`.
    StaleServe,
}

impl Event {
    /// What the event adds to a namespace's counters: hits, misses, waits,
    /// stale serves, saved ms.
    pub fn deltas(self) -> [i64; 5] {
        match self {
            Event::Hit { saved } => [
                1,
                0,
                0,
                0,
                i64::try_from(saved.as_millis()).unwrap_or(i64::MAX),
            ],
            Event::Miss => [0, 1, 0, 0, 0],
            Event::Wait => [0, 0, 1, 0, 0],
            Event::StaleServe => [0, 0, 0, 1, 0],
        }
    }
}

#[cfg(test)]
impl Meta {
    /// Metadata of an empty entry under `key` in namespace `ns`, for tests.
    pub fn blank(key: Key) -> Meta {
        Meta {
            key,
            namespace: "ns".into(),
            argv: Vec::new(),
            components: Vec::new(),
            exit_code: 0,
            stdout_len: 0,
            stderr_len: 0,
            runs: Vec::new(),
            duration_ms: 0,
            created_ms: 0,
            host: String::new(),
            pid: 0,
            user: String::new(),
            stdout_blake3: [0; 32],
            stderr_blake3: [0; 32],
            format: FORMAT,
            outputs: Outputs::default(),
            seal: None,
            encoding: Encoding::Raw,
        }
    }
}

#[cfg(test)]
mod tests;
