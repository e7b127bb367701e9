//! The `s3` store: a bucket of any S3-compatible store (AWS S3, MinIO, Ceph
//! RGW, R2, ...), over a synchronous client (`rusty-s3` signs, `ureq`
//! sends): no async runtime, nothing connects until the first call.
//!
//! ```text
//! P/e/<key>             entry: "CACHIER\x01", created ms (u64 BE), meta length (u32 BE),
//!                       meta (CBOR), then the body (zstd unless `compression = "none"`:
//!                       the meta says which); big ones by multipart upload
//! P/n/<ns hex>/<key>    empty: which namespace an entry is in (ls, stats, clear --name)
//! P/claim/<key>         single-flight claim: "host\tpid\ttoken" (see claim.rs)
//! P/counts/total        counters folded so far (JSON), see counts.rs
//! P/counts/d/<random>   one run's counter deltas (JSON)
//! P/mark/<what>         rate limits of background clean-up
//! ```
//! `P` is the prefix of `--s3-url s3://BUCKET/PREFIX`. An entry is one
//! object, written whole (a PUT, or a multipart upload completed last), so
//! readers see the old entry or the new one. A hit reads the first 64 KiB
//! in one ranged GET (a small entry is whole in it), the rest by ranged
//! GETs decoded into a local file, verified before the first byte is
//! replayed.
//!
//! Endpoint: `--s3-endpoint`, else `AWS_ENDPOINT_URL_S3` or
//! `AWS_ENDPOINT_URL`, else AWS in the region (`AWS_REGION`,
//! `AWS_DEFAULT_REGION`, the profile's `region`, else us-east-1). Addressing
//! is virtual-host on AWS and path-style on another endpoint
//! (`CACHIER_S3_ADDRESSING=path|virtual` chooses). Credentials: see
//! `creds.rs`. Timeouts: connect 1 s, each request 5 s; 503 SlowDown and
//! 500 are retried 4 times (0.1 s doubling); an unreachable or refusing
//! bucket is not asked again by the same run. Single-flight: a 6 s lease
//! renewed every 2 s, judged by the server's clock; the waiters of one
//! machine on one key elect one of them (a local `flock`, `watch.rs`) to
//! HEAD the entry every 20 ms doubling to 100 ms (a stored result wakes
//! them within 100 ms) and the claim every second (a dead owner is taken
//! over within about 8 s): at most 11 requests a second per key per
//! machine (see `claim.rs`); the others watch a local file.
#[cfg(feature = "s3")]
mod body;
#[cfg(feature = "s3")]
mod claim;
#[cfg(feature = "s3")]
mod conn;
#[cfg(feature = "s3")]
mod counts;
#[cfg(feature = "s3")]
mod creds;
#[cfg(feature = "s3")]
mod layout;
#[cfg(feature = "s3")]
mod probe;
#[cfg(feature = "s3")]
mod profile;
#[cfg(feature = "s3")]
mod read;
#[cfg(feature = "s3")]
mod store;
#[cfg(feature = "s3")]
mod text;
#[cfg(feature = "s3")]
mod watch;

use super::Store;
use super::param::{Common, Kind, Param, Section};
use super::registry::Def;

pub static DEF: Def = Def {
    name: "s3",
    aliases: &[],
    reach: 3,
    params: &[
        Param {
            key: "s3_url",
            var: "CACHIER_S3_URL",
            flag: Some("s3-url"),
            tier_key: Some("url"),
            kind: Kind::Text,
            value_name: "URL",
            help: "The s3 backend's bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]",
        },
        Param {
            key: "s3_endpoint",
            var: "CACHIER_S3_ENDPOINT",
            flag: Some("s3-endpoint"),
            tier_key: Some("endpoint"),
            kind: Kind::Text,
            value_name: "URL",
            help: "The s3 backend's endpoint, for S3-compatible stores (http://host:port) \
                   [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]",
        },
        Param {
            key: "s3_addressing",
            var: "CACHIER_S3_ADDRESSING",
            flag: None,
            tier_key: None,
            kind: Kind::Text,
            value_name: "STYLE",
            help: "path or virtual [default: virtual on AWS, path elsewhere]",
        },
    ],
    check,
    open,
    pooled: |_| false,
};

/// The s3 backend's settings, checked; the region is read when used.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Object names start with this: empty, or ending in `/`.
    pub prefix: String,
    /// Given by a flag or variable; else AWS in the region.
    pub endpoint: Option<String>,
    pub path_style: Option<bool>,
    /// Where this machine notes what it learnt of the store (the cache dir).
    pub notes: std::path::PathBuf,
    /// Read-only: nothing is written, not even a probe or a fold of the
    /// counters (credentials may allow GetObject alone).
    pub read_only: bool,
    /// How bodies are stored (config `compression`).
    pub compression: crate::entry::Encoding,
}

impl S3Config {
    pub fn from_section(section: &Section, ctx: &Common) -> Result<S3Config, String> {
        let Some((url, from)) = section.text("s3_url") else {
            return Err(
                "the s3 backend needs a bucket: give --s3-url s3://BUCKET/PREFIX (or CACHIER_S3_URL)"
                    .into(),
            );
        };
        let (bucket, prefix) = parse_url(url).map_err(|e| format!("{from}: {e}"))?;
        let endpoint = match section.text("s3_endpoint") {
            Some((e, from)) => Some(check_endpoint(e).map_err(|e| format!("{from}: {e}"))?),
            None => ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|v| {
                    std::env::var(v)
                        .ok()
                        .filter(|e| !e.is_empty())
                        .map(|e| (v, e))
                })
                .map(|(v, e)| check_endpoint(&e).map_err(|e| format!("{v}: {e}")))
                .transpose()?,
        };
        let path_style = match section.text("s3_addressing") {
            None => None,
            Some(("path", _)) => Some(true),
            Some(("virtual", _)) => Some(false),
            Some((other, from)) => {
                return Err(format!(
                    "{from}: `{other}` is not an addressing style; write path or virtual"
                ));
            }
        };
        Ok(S3Config {
            bucket,
            prefix,
            endpoint,
            path_style,
            notes: ctx.cache_dir.clone(),
            read_only: ctx.read_only,
            compression: ctx.compression,
        })
    }

    /// `s3://bucket/prefix (endpoint)`, for people: no credentials.
    pub fn place(&self) -> String {
        let at = self.endpoint.as_deref().unwrap_or("AWS");
        format!(
            "s3://{}/{} ({at})",
            self.bucket,
            self.prefix.trim_end_matches('/')
        )
    }
}

/// `s3://bucket/prefix` into the bucket and the prefix (`""` or `p/`).
fn parse_url(url: &str) -> Result<(String, String), String> {
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(format!(
            "`{url}` is not an S3 URL; write s3://BUCKET/PREFIX"
        ));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid {
        return Err(format!(
            "`{bucket}` is not a bucket name (3 to 63 lowercase letters, digits, - and .); write s3://BUCKET/PREFIX"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.chars().any(|c| c.is_control()) || prefix.contains("//") {
        return Err(format!(
            "`{prefix}` is not a usable prefix; write e.g. s3://{bucket}/team/cache"
        ));
    }
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    Ok((bucket.to_string(), prefix))
}

/// An endpoint: an http or https URL with a host, without credentials.
fn check_endpoint(e: &str) -> Result<String, String> {
    let bad = || format!("`{e}` is not an endpoint; write http://HOST:PORT or https://HOST");
    let rest = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
        .ok_or_else(bad)?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') || rest.contains('?') {
        return Err(bad());
    }
    Ok(e.trim_end_matches('/').to_string())
}

fn check(section: &Section, ctx: &Common) -> Result<(), String> {
    S3Config::from_section(section, ctx).map(drop)
}

#[cfg(feature = "s3")]
fn open(section: &Section, ctx: &Common) -> Box<dyn Store> {
    match S3Config::from_section(section, ctx) {
        Ok(config) => store::open(config),
        Err(why) => super::unavailable::misconfigured("the s3 backend", why),
    }
}

#[cfg(not(feature = "s3"))]
fn open(_: &Section, _: &Common) -> Box<dyn Store> {
    super::unavailable::unbuilt("S3", "s3")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        assert_eq!(
            parse_url("s3://team-cache/cachier"),
            Ok(("team-cache".into(), "cachier/".into()))
        );
        assert_eq!(
            parse_url("s3://team-cache"),
            Ok(("team-cache".into(), String::new()))
        );
        assert_eq!(
            parse_url("s3://b.c.d/x/y/"),
            Ok(("b.c.d".into(), "x/y/".into()))
        );
        assert!(parse_url("http://b/x").is_err());
        assert!(parse_url("s3://Bad_Bucket/x").is_err());
        assert!(parse_url("s3:///x").is_err());
        assert!(check_endpoint("http://127.0.0.1:9000/").is_ok());
        assert!(check_endpoint("ftp://x").is_err());
        assert!(check_endpoint("http://user:pw@x").is_err());
    }
}
