//! The Redis store proper: the [`Store`] calls, each a command or a Lua
//! script on the main connection, or a SCAN over every master.
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use anyhow::Result;

use super::RedisConfig;
use super::conn::Target;
use super::keys::{self, Names};
use super::lazy::Lazy;
use super::{body, claim, scan};

use crate::entry::{Event, millis_since_epoch};
use crate::key::Key;
use crate::store::{Claim, Counters, Found, Holder, Listed, Spool, Store};

/// The store's state, shared with its spools and fetches.
pub type Shared = Rc<Inner>;

pub struct Inner {
    pub lazy: Lazy,
    pub names: Names,
    /// The run's `--stale-after`: entries expire on the server past it.
    pub stale_after: Option<Duration>,
    /// The server refused the [`GET`] script (a user allowed only reads):
    /// lookups use plain commands.
    pub no_script: std::cell::Cell<bool>,
}

/// The connection, and how bodies are sent.
pub struct RedisStore(Shared, crate::entry::Encoding);

/// Whether the settings this backend needs (its URL, its prefix) are usable.
pub fn check(config: &RedisConfig) -> Result<(), String> {
    Target::parse(&config.url).map_err(|e| format!("{}: {e}", config.url_from))?;
    keys::check_prefix(&config.prefix).map_err(|e| format!("{}: {e}", config.prefix_from))?;
    Ok(())
}

pub fn open(
    config: RedisConfig,
    stale_after: Option<Duration>,
    compression: crate::entry::Encoding,
) -> Box<dyn Store> {
    Box::new(RedisStore(
        Rc::new(Inner {
            lazy: Lazy::new(Target::parse(&config.url)),
            names: Names::new(&config.prefix),
            stale_after,
            no_script: std::cell::Cell::new(false),
        }),
        compression,
    ))
}

/// Count ARGV[2] hits on the entry KEYS[1], if it is there, used at
/// ARGV[1] (ms).
const RECORD_HIT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'hits', ARGV[2])
  redis.call('HSET', KEYS[1], 'used', ARGV[1])
end
return 0";

/// Add to counters: KEYS[1] the counters hash, ARGV[1] now (ms), ARGV[2]
/// hits, then field and increment pairs; with KEYS[2] (an entry, on the
/// same server) also count the hits on it.
const COUNT: &str = r"
for i = 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
if #KEYS > 1 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'hits', ARGV[2])
  redis.call('HSET', KEYS[2], 'used', ARGV[1])
end
return 0";

/// An entry's metadata fields, and its only chunk if that is at most
/// ARGV[2] bytes (nil otherwise): a small hit is one round trip. KEYS[1]
/// the entry, ARGV[1] its chunks' name base (the same hash slot).
const GET: &str = r"
local m = redis.call('HMGET', KEYS[1], 'meta', 'gen', 'chunks', 'created')
m[5] = false
if m[2] and m[3] == '1' then
  local c = ARGV[1] .. m[2] .. ':0'
  if redis.call('STRLEN', c) <= tonumber(ARGV[2]) then m[5] = redis.call('GET', c) end
end
return m";

/// The largest chunk [`GET`] brings along with the metadata.
const GET_INLINE: u64 = 64 * 1024;

const REMOVE: &str = r"
local m = redis.call('HMGET', KEYS[1], 'gen', 'chunks', 'size')
if redis.call('UNLINK', KEYS[1]) == 0 then return 0 end
if m[1] then
  for i = 0, (tonumber(m[2]) or 0) - 1 do redis.call('UNLINK', ARGV[1] .. m[1] .. ':' .. i) end
end
return tonumber(m[3]) or 0";

const ZERO_HITS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'hits', 0) end
return 0";

/// The server will not run a script for us: the user may not (an ACL
/// allowing reads only), or scripting is off.
fn refused(e: &redis::RedisError) -> bool {
    e.code() == Some("NOPERM") || e.to_string().contains("unknown command")
}

impl Store for RedisStore {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        type Row = (
            Option<Vec<u8>>,
            Option<String>,
            Option<u64>,
            Option<u64>,
            Option<Vec<u8>>,
        );
        let name = self.0.names.meta(key);
        let script = redis::Script::new(GET);
        let mut call = script.prepare_invoke();
        call.key(&name)
            .arg(self.0.names.chunk_base(key))
            .arg(GET_INLINE);
        let scripted: Option<Row> = if self.0.no_script.get() {
            None
        } else {
            self.0.lazy.with(|c| match call.invoke(c) {
                Err(e) if refused(&e) => Ok(None),
                other => other.map(Some),
            })?
        };
        let (meta, generation, chunks, created, first): Row = match scripted {
            Some(row) => row,
            None => {
                self.0.no_script.set(true);
                let (meta, generation, chunks, created) = self.0.lazy.with(|c| {
                    redis::cmd("HMGET")
                        .arg(&name)
                        .arg(&["meta", "gen", "chunks", "created"])
                        .query(c)
                })?;
                (meta, generation, chunks, created, None)
            }
        };
        if meta.is_none() && generation.is_none() && chunks.is_none() && created.is_none() {
            return Ok(None);
        }
        let (Some(meta), Some(generation), Some(chunks), Some(created)) =
            (meta, generation, chunks, created)
        else {
            return Err(crate::entry::Corrupt {
                key: key.short(),
                why: "incomplete metadata".into(),
            }
            .into());
        };
        let meta = crate::entry::Meta::decode_at(&meta, key, created)?;
        let want = meta.body_len();
        let encoding = meta.encoding;
        Ok(Some(Found {
            meta,
            body: Box::new(body::RedisBody {
                store: self.0.clone(),
                key: *key,
                generation,
                chunks,
                want,
                encoding,
                first: first.filter(|_| chunks == 1),
            }),
            stale_after: None,
        }))
    }

    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        Ok(Box::new(body::RedisSpool::new(
            self.0.clone(),
            *key,
            self.1,
        )?))
    }

    fn claim(&self, key: &Key) -> Result<Claim> {
        let me = &Holder::me();
        claim::claim(&self.0, key, me)
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        claim::wait(&self.0, key, timeout)
    }

    fn remove(&self, key: &Key, _namespace: &str) -> Result<u64> {
        let script = redis::Script::new(REMOVE);
        let mut call = script.prepare_invoke();
        call.key(self.0.names.meta(key))
            .arg(self.0.names.chunk_base(key));
        self.0.lazy.with(|c| call.invoke::<u64>(c))
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        scan::list(&self.0, namespace)
    }

    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()> {
        self.record_sum(namespace, key, event.deltas())
    }

    fn record_sum(&self, namespace: &str, key: &Key, deltas: [i64; 5]) -> Result<()> {
        let now = millis_since_epoch(SystemTime::now());
        let hits = deltas[0];
        let hit = hits > 0;
        // One round trip on one server; a cluster keeps the counters and
        // the entry in different slots, so it takes two.
        let together = hit && !self.0.lazy.target()?.is_cluster();
        let script = redis::Script::new(COUNT);
        let mut call = script.prepare_invoke();
        call.key(self.0.names.counters()).arg(now).arg(hits);
        if together {
            call.key(self.0.names.meta(key));
        }
        let fields = ["hits", "misses", "waits", "stale_serves", "saved_ms"];
        for (what, n) in fields.into_iter().zip(deltas) {
            if n != 0 {
                call.arg(format!("{what}:{namespace}")).arg(n);
            }
        }
        self.0.lazy.with(|c| call.invoke::<i64>(c))?;
        if hit && !together {
            let script = redis::Script::new(RECORD_HIT);
            let mut call = script.prepare_invoke();
            call.key(self.0.names.meta(key)).arg(now).arg(hits);
            self.0.lazy.with(|c| call.invoke::<i64>(c))?;
        }
        Ok(())
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        let name = self.0.names.counters();
        let fields: Vec<(String, i64)> = self
            .0
            .lazy
            .with(|c| redis::cmd("HGETALL").arg(&name).query(c))?;
        let mut out: BTreeMap<String, Counters> = BTreeMap::new();
        for (field, n) in fields {
            let Some((what, ns)) = field.split_once(':') else {
                continue;
            };
            let n = n.max(0) as u64;
            let c = out.entry(ns.to_string()).or_default();
            match what {
                "hits" => c.hits = n,
                "misses" => c.misses = n,
                "waits" => c.waits = n,
                "stale_serves" => c.stale_serves = n,
                "saved_ms" => c.saved_ms = n,
                _ => {}
            }
        }
        for (ns, size) in scan::sizes(&self.0)? {
            let c = out.entry(ns).or_default();
            c.entries += 1;
            c.bytes += size;
        }
        // A namespace whose counters were all zeroed and that holds nothing.
        out.retain(|_, c| *c != Counters::default());
        Ok(out)
    }

    fn reset_counters(&self) -> Result<()> {
        let name = self.0.names.counters();
        self.0
            .lazy
            .with(|c| redis::cmd("UNLINK").arg(&name).exec(c))?;
        let script = redis::Script::new(ZERO_HITS);
        scan::scan(&self.0, &self.0.names.meta_pattern(), |conn, names| {
            for name in names {
                script.key(name).invoke::<i64>(conn)?;
            }
            Ok(())
        })
    }

    fn clear_claims(&self) -> Result<u64> {
        let mut wiped = 0;
        scan::scan(&self.0, &self.0.names.claim_pattern(), |conn, names| {
            for name in names {
                let pttl: i64 = redis::cmd("PTTL").arg(&name).query(conn)?;
                if claim::looks_dead(pttl) {
                    wiped += redis::cmd("UNLINK").arg(&name).query::<u64>(conn)?;
                }
            }
            Ok(())
        })?;
        Ok(wiped)
    }

    fn location(&self) -> String {
        match &self.0.lazy.target {
            Ok(t) => t.place().to_string(),
            Err(_) => "Redis (unparsable URL)".to_string(),
        }
    }

    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        let name = self.0.names.mark(what);
        let set: Option<String> = self.0.lazy.with(|c| {
            redis::cmd("SET")
                .arg(&name)
                .arg(millis_since_epoch(SystemTime::now()))
                .arg("NX")
                .arg("PX")
                .arg(interval.as_millis().max(1) as u64)
                .query(c)
        })?;
        Ok(set.is_some())
    }
}
