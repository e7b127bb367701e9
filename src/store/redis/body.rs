//! An entry's body in Redis: values of at most 1 MiB, stdout then stderr,
//! under a fresh generation id; one Lua script then points the metadata at
//! the new generation and unlinks the old one, so readers see the old entry
//! or the new one, never a mix. Replay reads chunk by chunk into a local
//! file: memory stays constant whatever the output's size.
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};

use super::store::Shared;
use crate::entry::{Body, Corrupt, Meta, Stream, millis_since_epoch};
use crate::key::Key;
use crate::store::compress::{Sink, sink_error};
use crate::store::{Fetch, Spool, Staged, read_full};

use crate::store::kit::CHUNK;
/// Chunks fetched per round trip: memory stays under this many MiB.
const FETCH_BATCH: u64 = 4;
/// Chunks of a write that never commits (its writer died) expire after this.
const PENDING: Duration = Duration::from_secs(24 * 3600);
/// A stale entry stays on the server this long past its staleness (at least
/// a minute), so `--next-time` can still serve it; then Redis expires it.
pub const MIN_MARGIN: Duration = Duration::from_secs(60);

/// Publish a written generation: KEYS[1] the metadata hash; ARGV: generation,
/// chunk count, metadata, created ms, size, namespace, expire-at ms (0:
/// never), chunk key base. Chunks outlive their metadata by a minute, so a
/// reader never finds an expiring entry's metadata without its chunks.
const PUBLISH: &str = r"
local old = redis.call('HMGET', KEYS[1], 'gen', 'chunks')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'chunks', ARGV[2], 'meta', ARGV[3],
  'created', ARGV[4], 'used', ARGV[4], 'hits', 0, 'size', ARGV[5], 'ns', ARGV[6])
local at = tonumber(ARGV[7])
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local c = ARGV[8] .. ARGV[1] .. ':' .. i
  if at > 0 then redis.call('PEXPIREAT', c, at + 60000) else redis.call('PERSIST', c) end
end
if at > 0 then redis.call('PEXPIREAT', KEYS[1], at) end
if old[1] and old[1] ~= ARGV[1] then
  for i = 0, (tonumber(old[2]) or 0) - 1 do
    redis.call('UNLINK', ARGV[8] .. old[1] .. ':' .. i)
  end
end
return n
";

/// When an entry made at `created_ms` should leave the server (0: never).
pub fn expire_at(created_ms: u64, stale_after: Option<Duration>) -> u64 {
    let Some(stale) = stale_after else { return 0 };
    let stale_ms = stale.as_millis() as u64;
    let margin = stale_ms.max(MIN_MARGIN.as_millis() as u64);
    let now = millis_since_epoch(SystemTime::now());
    created_ms
        .saturating_add(stale_ms)
        .saturating_add(margin)
        .max(now + MIN_MARGIN.as_millis() as u64)
}

/// Output spooled to local temp files; sent to the server at commit.
pub struct RedisSpool {
    store: Shared,
    key: Key,
    staged: Staged,
}

impl RedisSpool {
    pub fn new(store: Shared, key: Key, encoding: crate::entry::Encoding) -> Result<RedisSpool> {
        Ok(RedisSpool {
            store,
            key,
            staged: Staged::new(encoding)?,
        })
    }
}

impl Spool for RedisSpool {
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.staged.write(stream, data)
    }

    fn commit(mut self: Box<Self>, meta: &Meta) -> Result<()> {
        let fail = || format!("cannot store cache entry {}", meta.key.short());
        let meta = &self.staged.stored_meta(meta);
        let mut meta_bytes = Vec::new();
        ciborium::into_writer(meta, &mut meta_bytes).with_context(fail)?;
        let size = meta.body_len() + meta_bytes.len() as u64;
        let names = &self.store.names;
        let generation = super::claim::token_random();
        let mut body = self.staged.body().with_context(fail)?;
        let mut buf = vec![0u8; CHUNK];
        let mut chunks = 0u64;
        loop {
            let n = read_full(&mut body, &mut buf).with_context(fail)?;
            if n == 0 {
                break;
            }
            let name = names.chunk(&self.key, &generation, chunks);
            self.store
                .lazy
                .with(|c| {
                    redis::cmd("SET")
                        .arg(&name)
                        .arg(&buf[..n])
                        .arg("PX")
                        .arg(PENDING.as_millis() as u64)
                        .exec(c)
                })
                .with_context(fail)?;
            chunks += 1;
        }
        let at = expire_at(meta.created_ms, self.store.stale_after);
        let script = redis::Script::new(PUBLISH);
        let mut call = script.prepare_invoke();
        call.key(names.meta(&self.key))
            .arg(&generation)
            .arg(chunks)
            .arg(&meta_bytes[..])
            .arg(meta.created_ms)
            .arg(size)
            .arg(&meta.namespace)
            .arg(at)
            .arg(names.chunk_base(&self.key));
        self.store
            .lazy
            .with(|c| call.invoke::<u64>(c).map(drop))
            .with_context(fail)
    }
}

/// An entry's body, fetched only when the entry will be served.
pub struct RedisBody {
    pub store: Shared,
    pub key: Key,
    pub generation: String,
    pub chunks: u64,
    /// Bytes the metadata promises (stdout plus stderr).
    pub want: u64,
    /// How the chunks hold them.
    pub encoding: crate::entry::Encoding,
    /// The only chunk, when it came with the metadata.
    pub first: Option<Vec<u8>>,
}

impl Fetch for RedisBody {
    fn fetch(self: Box<Self>) -> Result<Body> {
        let file = crate::store::kit::scratch(self.want, tempfile::tempfile)?;
        let corrupt = |why: &str| Corrupt {
            key: self.key.short(),
            why: why.to_string(),
        };
        let mut sink = Sink::new(file.try_clone()?, self.encoding, self.want)?;
        let names = &self.store.names;
        let mut next = 0u64;
        if let Some(data) = &self.first {
            sink.write_all(data).map_err(|e| sink_error(e, &self.key))?;
            next = 1;
        }
        while next < self.chunks {
            // One MGET per few chunks (one slot: allowed on a cluster too).
            let batch: Vec<String> = (next..self.chunks.min(next + FETCH_BATCH))
                .map(|n| names.chunk(&self.key, &self.generation, n))
                .collect();
            next += batch.len() as u64;
            let data: Vec<Option<Vec<u8>>> = self
                .store
                .lazy
                .with(|c| redis::cmd("MGET").arg(&batch).query(c))?;
            for data in data {
                let Some(data) = data else {
                    return Err(self.missing_chunk()?.into());
                };
                sink.write_all(&data)
                    .map_err(|e| sink_error(e, &self.key))?;
            }
        }
        let total = sink.finish().map_err(|e| sink_error(e, &self.key))?;
        if total != self.want {
            return Err(corrupt("length mismatch").into());
        }
        Ok(Body { file, start: 0 })
    }
}

impl RedisBody {
    /// A chunk is gone: corrupt, unless a newer entry replaced this one
    /// while we read (then it is only a failed read).
    fn missing_chunk(&self) -> Result<Corrupt> {
        let meta = self.store.names.meta(&self.key);
        let now: Option<String> = self
            .store
            .lazy
            .with(|c| redis::cmd("HGET").arg(&meta).arg("gen").query(c))?;
        if now.is_some_and(|g| g != self.generation) {
            return Err(anyhow!(
                "cache entry {} was replaced while it was read; try again",
                self.key.short()
            ));
        }
        Ok(Corrupt {
            key: self.key.short(),
            why: "a chunk is missing".to_string(),
        })
    }
}
