//! What a pooled store is: its backend, its settings (credentials
//! included) and the common context, as the bytes a client sends the
//! daemon. The daemon opens a store from them and pools it under their
//! hash, so a connection serves only clients that present the same ones.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::entry::Encoding;
use crate::store::Store;
use crate::store::memory::daemon::proto::millis;
use crate::store::param::{Common, Given, Section, Value};
use crate::store::registry::Backend;

/// The variables that change which servers a TLS client trusts: a daemon
/// started with other values would trust otherwise, so it serves only
/// clients whose values equal its own.
const TRUST_VARS: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

#[derive(Serialize, Deserialize)]
struct Target {
    backend: String,
    given: Vec<(String, Wire, String)>,
    cache_dir: PathBuf,
    verbose: bool,
    stale_after_ms: Option<u64>,
    read_only: bool,
    compression: Encoding,
    trust: Vec<Option<String>>,
}

#[derive(Serialize, Deserialize)]
enum Wire {
    Text(String),
    Size(u64),
    Ms(u64),
}

/// The bytes that stand for `backend` opened with `section` and `common`.
pub fn encode(backend: Backend, section: &Section, common: &Common) -> Result<Vec<u8>> {
    let target = Target {
        backend: backend.name().to_string(),
        given: section
            .given
            .iter()
            .map(|g| {
                let value = match &g.value {
                    Value::Text(t) => Wire::Text(t.clone()),
                    Value::Size(n) => Wire::Size(*n),
                    Value::Duration(d) => Wire::Ms(millis(*d)),
                };
                (g.key.to_string(), value, g.from.clone())
            })
            .collect(),
        // The daemon works from `/`.
        cache_dir: std::path::absolute(&common.cache_dir)?,
        verbose: common.verbose,
        stale_after_ms: common.stale_after.map(millis),
        read_only: common.read_only,
        compression: common.compression,
        trust: trust(),
    };
    let mut bytes = Vec::new();
    ciborium::into_writer(&target, &mut bytes).map_err(|e| anyhow!("{e}"))?;
    Ok(bytes)
}

/// The store `bytes` stand for, opened (lazily, as every store) in this
/// process; an error when they cannot be read, name no backend we know,
/// or were made under other trust settings than ours.
pub fn open(bytes: &[u8]) -> Result<Box<dyn Store>> {
    let target: Target = ciborium::from_reader(bytes).map_err(|e| anyhow!("bad target: {e}"))?;
    if target.trust != trust() {
        return Err(anyhow!("the daemon trusts other certificates"));
    }
    let backend = Backend::parse(&target.backend).map_err(|e| anyhow!(e))?;
    let def = backend.def();
    let mut given = Vec::new();
    for (key, value, from) in target.given {
        let param = def
            .params
            .iter()
            .find(|p| p.key == key)
            .ok_or_else(|| anyhow!("no setting {key} for {}", def.name))?;
        let value = match value {
            Wire::Text(t) => Value::Text(t),
            Wire::Size(n) => Value::Size(n),
            Wire::Ms(ms) => Value::Duration(Duration::from_millis(ms)),
        };
        given.push(Given {
            key: param.key,
            var: param.var,
            value,
            from,
        });
    }
    let common = Common {
        cache_dir: target.cache_dir,
        verbose: target.verbose,
        stale_after: target.stale_after_ms.map(Duration::from_millis),
        read_only: target.read_only,
        compression: target.compression,
    };
    Ok((def.open)(&Section { given }, &common))
}

fn trust() -> Vec<Option<String>> {
    TRUST_VARS
        .iter()
        .map(|v| std::env::var_os(v).map(|s| s.to_string_lossy().into_owned()))
        .collect()
}
