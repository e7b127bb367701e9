//! The checked-in seed corpus (`fuzz/corpus/`) under `cargo test`: every
//! seed and every crash input kept there goes through its target, the
//! seeds decode as what they are, and the daemon frames are what the
//! encoder writes today (`CACHIER_WRITE_FUZZ_SEEDS=1` rewrites them).
use std::path::PathBuf;

use serde_bytes::ByteBuf;

use super::reseal::reseal;
use crate::dump;
use crate::entry::{Meta, Stream};
use crate::key::Key;
use crate::store::memory::daemon::proto::{self, Ev, Req, Resp, Status};

/// A fuzz target: its name and its entry point.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 5] = [
    ("entry_meta", super::entry_meta),
    ("dump_stream", super::dump_stream),
    ("config_file", super::config_file),
    ("units", super::units),
    ("daemon_frames", super::daemon_frames),
];

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Every file of a target's corpus: name and bytes.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus(target))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

#[test]
fn every_seed_and_crash_input_goes_through_its_target() {
    for (target, run) in TARGETS {
        for (name, bytes) in seeds(target) {
            eprintln!("{target}/{name}");
            run(&bytes);
        }
    }
}

#[test]
fn entry_seeds_are_sound_entries() {
    let file = tempfile::tempfile().unwrap();
    for (name, bytes) in seeds("entry_meta") {
        let (key, stored) = bytes.split_first_chunk::<32>().unwrap();
        let key = Key(*key);
        if name.starts_with("meta-") {
            Meta::decode(stored, &key).unwrap();
        } else if name.starts_with("file-") {
            std::os::unix::fs::FileExt::write_all_at(&file, stored, 0).unwrap();
            file.set_len(stored.len() as u64).unwrap();
            crate::store::file::format::read_meta(&file, stored.len() as u64, &key).unwrap();
        }
    }
}

#[test]
fn export_seeds_read_whole_and_reseal_unchanged() {
    for (name, bytes) in seeds("dump_stream") {
        if !name.starts_with("export-") {
            continue;
        }
        drain_whole(&bytes).unwrap();
        assert_eq!(reseal(&bytes), bytes, "{name}");
    }
}

#[test]
fn a_damaged_output_resealed_reads_whole() {
    let (_, bytes) = seeds("dump_stream")
        .into_iter()
        .find(|(name, _)| name == "export-3-entries")
        .unwrap();
    let at = bytes.windows(6).position(|w| w == b"hello\n").unwrap();
    let mut damaged = bytes.clone();
    damaged[at] = b'j';
    assert!(drain_whole(&damaged).is_err());
    let resealed = reseal(&damaged);
    assert_eq!(drain_whole(&resealed).unwrap(), 3);
    assert!(resealed.windows(6).any(|w| w == b"jello\n"));
}

fn drain_whole(bytes: &[u8]) -> Result<u64, dump::StreamError> {
    let mut reader = dump::Reader::open(bytes)?;
    let mut n = 0;
    while reader.next_entry()?.is_some() {
        while reader.chunk()?.is_some() {}
        n += 1;
    }
    Ok(n)
}

#[test]
fn config_seeds_load_except_the_one_with_mistakes() {
    for (name, bytes) in seeds("config_file") {
        let text = String::from_utf8(bytes).unwrap();
        let loaded = crate::config::FileLayer::from_text(std::path::Path::new(&name), &text);
        assert_eq!(
            loaded.is_ok(),
            name != "mistakes.toml",
            "{name}: {loaded:?}"
        );
    }
}

/// The daemon seeds: one client's requests for a miss, another's for a
/// hit and the rest, and the daemon's replies.
fn daemon_sessions() -> Vec<(&'static str, Vec<u8>)> {
    let (_, stored) = seeds("entry_meta")
        .into_iter()
        .find(|(name, _)| name == "meta-1")
        .unwrap();
    let meta = ByteBuf::from(stored[32..].to_vec());
    let key = Key(stored[..32].try_into().unwrap());
    let hello = Req::Hello {
        protocol: proto::PROTOCOL,
        version: "0.1.0".into(),
    };
    let (id, namespace) = (7, "echo".to_string());
    let tree = crate::watch::Tree {
        root: ByteBuf::from(b"/home/me/project".to_vec()),
        no_ignore: false,
        outputs: vec![ByteBuf::from(b"dist".to_vec())],
        cwd: ByteBuf::from(b"/home/me/project".to_vec()),
    };
    let miss = [
        hello,
        Req::Get { key },
        Req::Claim {
            key,
            host: "host".into(),
            pid: 4242,
        },
        Req::Begin { id, key },
        Req::Put {
            id,
            stream: Stream::Stdout,
            data: ByteBuf::from(b"hello\n".to_vec()),
        },
        Req::Put {
            id,
            stream: Stream::Stderr,
            data: ByteBuf::from(b"\x00\xff".to_vec()),
        },
        Req::Commit {
            id,
            namespace: namespace.clone(),
            created_ms: 1_700_000_000_000,
            meta: meta.clone(),
        },
        Req::Release { key },
        Req::Record {
            namespace: namespace.clone(),
            key,
            event: Ev::Miss,
        },
    ];
    let rest = [
        Req::Get { key },
        Req::Body,
        Req::Record {
            namespace,
            key,
            event: Ev::Hit { saved_ms: 1500 },
        },
        Req::Wait {
            key,
            timeout_ms: Some(30_000),
        },
        Req::List { namespace: None },
        Req::Counters,
        Req::Status,
        Req::Abort { id },
        Req::Remove { key },
        Req::OncePer {
            what: "sweep".into(),
            interval_ms: 3_600_000,
        },
        Req::ResetCounters,
        Req::DebugAge { ms: 60_000 },
        Req::DebugDamage { truncate: true },
        Req::PoolGet {
            target: ByteBuf::from(b"\xa1gbackenderedis".to_vec()),
            key,
        },
        Req::PoolBody { key },
        Req::PoolRecord {
            target: ByteBuf::from(b"\xa1gbackenderedis".to_vec()),
            namespace: "echo".into(),
            key,
            events: vec![Ev::Hit { saved_ms: 1500 }, Ev::Wait],
        },
        Req::PoolSettle,
        Req::Watch {
            tree: tree.clone(),
            name: "src/*.c".into(),
            outside: ByteBuf::from(vec![3; 32]),
        },
        Req::Remember {
            tree,
            name: "src/*.c".into(),
            outside: ByteBuf::from(vec![3; 32]),
            generation: 4,
            record: ByteBuf::from(b"\x82\x19\x03\xe8\x58\x20".to_vec()),
        },
        Req::Stop,
    ];
    let replies = [
        Resp::Hello {
            protocol: proto::PROTOCOL,
            version: "0.1.0".into(),
            pid: 4242,
        },
        Resp::Missing,
        Resp::Owner,
        Resp::Stored { kept: true },
        Resp::Found {
            meta: meta.clone(),
            created_ms: 1_700_000_000_000,
            len: 8,
            inline: Some(ByteBuf::from(b"hello\n\x00\xff".to_vec())),
        },
        Resp::BodyFd { len: 8 },
        Resp::Flag(true),
        Resp::Listed {
            meta: meta.clone(),
            created_ms: 1_700_000_000_000,
            last_used_ms: 1_700_000_060_000,
            hits: 3,
            size: 8,
        },
        Resp::End,
        Resp::Counters(vec![("echo".into(), [1, 8, 3, 1, 0, 0, 4500])]),
        Resp::Status(Box::new(Status {
            pid: 4242,
            uptime_ms: 90_000,
            entries: 1,
            bytes: 8,
            hits: 3,
            max_memory: 1 << 30,
            idle_timeout_ms: 900_000,
            connections: 2,
            version: "0.1.0".into(),
            protocol: proto::PROTOCOL,
            uploading: 0,
            pooled: vec![("redis://cache:6379/0".into(), 2)],
            watched: (1, 12),
        })),
        Resp::Busy {
            host: "host".into(),
            pid: 4243,
        },
        Resp::Removed(1),
        Resp::Done,
        Resp::Error {
            why: "out of memory".into(),
        },
        Resp::Refused {
            why: "protocol 2".into(),
        },
        Resp::Pooled {
            meta,
            stale_after_ms: Some(3_600_000),
            start: Some(0),
        },
        Resp::PoolBody { start: 0 },
        Resp::PoolFailed {
            why: "no answer within 5 s".into(),
            outage: true,
            corrupt: Some(("0123456789ab".into(), "truncated".into())),
        },
        Resp::Watching { generation: 4 },
        Resp::Changed {
            record: ByteBuf::from(b"\x83\x19\x03\xe8\x58\x20".to_vec()),
            dirs: vec![ByteBuf::from(b"/home/me/project/src".to_vec())],
            generation: 9,
        },
        Resp::Unchanged {
            record: ByteBuf::from(b"\x82\x19\x03\xe8\x58\x20".to_vec()),
        },
        Resp::Unwatchable {
            why:
                "`/mnt/nfs` is on a filesystem (type 0x6969) that another machine may change unseen"
                    .into(),
        },
    ];
    let mut buf = Vec::new();
    for m in &miss {
        proto::encode(&mut buf, m).unwrap();
    }
    let miss = std::mem::take(&mut buf);
    for m in &rest {
        proto::encode(&mut buf, m).unwrap();
    }
    let rest = std::mem::take(&mut buf);
    for m in &replies {
        proto::encode(&mut buf, m).unwrap();
    }
    vec![
        ("client-miss", miss),
        ("client-rest", rest),
        ("daemon-replies", buf),
    ]
}

#[test]
fn daemon_seeds_are_what_the_encoder_writes() {
    for (name, bytes) in daemon_sessions() {
        let path = corpus("daemon_frames").join(name);
        if std::env::var_os("CACHIER_WRITE_FUZZ_SEEDS").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        let seed = std::fs::read(&path).unwrap();
        assert!(
            seed == bytes,
            "{name} is stale: rerun with CACHIER_WRITE_FUZZ_SEEDS=1"
        );
        let mut input = &seed[..];
        let mut buf = Vec::new();
        let mut n = 0;
        if name.starts_with("client") {
            while proto::recv::<Req>(&mut input, &mut buf).unwrap().is_some() {
                n += 1;
            }
        } else {
            while proto::recv::<Resp>(&mut input, &mut buf).unwrap().is_some() {
                n += 1;
            }
        }
        assert!(n > 5, "{name}: {n} frames");
    }
}
