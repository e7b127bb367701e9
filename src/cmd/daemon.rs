//! `cachier daemon start|stop|status`: the memory backend's daemon by hand
//! (it also starts by itself on first use). `serve` is what runs in the
//! daemon process; `debug-age` and `debug-damage` exist for the tests only.
use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::cli::DaemonCmd;
use crate::human;
use crate::settings::Settings;
use crate::store::memory::{MemoryConfig, admin, admin::Status};

/// `status`'s exit code when no daemon runs (as LSB init scripts do).
const NOT_RUNNING: u8 = 3;

pub fn run(settings: &Settings, cmd: &DaemonCmd) -> Result<u8> {
    let config = MemoryConfig::of(settings);
    let mut out = std::io::stdout().lock();
    match cmd {
        DaemonCmd::Start { idle_timeout } => {
            match admin::start(config, *idle_timeout)? {
                (pid, false) => writeln!(out, "the memory daemon already runs (pid {pid})")?,
                (pid, true) => writeln!(
                    out,
                    "started the memory daemon (pid {pid}) on {}",
                    admin::socket().display()
                )?,
            }
            Ok(0)
        }
        DaemonCmd::Stop => {
            match admin::stop()? {
                Some(pid) => writeln!(out, "stopped the memory daemon (pid {pid})")?,
                None => writeln!(out, "the memory daemon is not running")?,
            }
            Ok(0)
        }
        DaemonCmd::Status { json } => {
            let Some(status) = admin::status()? else {
                if *json {
                    writeln!(out, "{}", json!({ "running": false }))?;
                } else {
                    writeln!(out, "the memory daemon is not running")?;
                }
                return Ok(NOT_RUNNING);
            };
            let socket = admin::socket().display().to_string();
            if *json {
                writeln!(out, "{}", status_json(&status, &socket))?;
            } else {
                print_status(&mut out, &status, &socket)?;
            }
            Ok(0)
        }
        DaemonCmd::Serve { idle_timeout } => {
            admin::serve(config, *idle_timeout)?;
            Ok(0)
        }
        DaemonCmd::DebugAge { ms } => admin::debug_age(*ms).map(|()| 0),
        DaemonCmd::DebugDamage { truncate } => admin::debug_damage(*truncate).map(|()| 0),
    }
}

fn status_json(s: &Status, socket: &str) -> serde_json::Value {
    json!({
        "running": true,
        "pid": s.pid,
        "uptime_ms": s.uptime_ms,
        "entries": s.entries,
        "bytes": s.bytes,
        "hits": s.hits,
        "max_memory": s.max_memory,
        "idle_timeout_ms": s.idle_timeout_ms,
        "connections": s.connections,
        "uploading": s.uploading,
        "pooled": s.pooled.iter().map(|(server, n)| json!({"server": server, "connections": n})).collect::<Vec<_>>(),
        "watched": json!({"trees": s.watched.0, "directories": s.watched.1}),
        "socket": socket,
        "version": s.version,
        "protocol": s.protocol,
    })
}

/// `redis://cache:6379/0 (2), ...`, or `none`.
fn pooled(servers: &[(String, u64)]) -> String {
    if servers.is_empty() {
        return "none".to_string();
    }
    let each: Vec<String> = servers.iter().map(|(s, n)| format!("{s} ({n})")).collect();
    each.join(", ")
}

fn print_status(out: &mut impl Write, s: &Status, socket: &str) -> std::io::Result<()> {
    let rows = [
        ("pid", s.pid.to_string()),
        (
            "uptime",
            human::duration(Duration::from_millis(s.uptime_ms)),
        ),
        ("entries", s.entries.to_string()),
        (
            "bytes",
            format!(
                "{} of max {}",
                human::bytes(s.bytes),
                human::bytes(s.max_memory)
            ),
        ),
        ("hits", s.hits.to_string()),
        (
            "idle timeout",
            human::duration(Duration::from_millis(s.idle_timeout_ms)),
        ),
        ("pooled", pooled(&s.pooled)),
        (
            "watching",
            format!(
                "{} ({})",
                human::count(s.watched.0, "tree", "trees"),
                human::count(s.watched.1, "directory", "directories")
            ),
        ),
        ("socket", socket.to_string()),
        (
            "version",
            format!("cachier {} (protocol {})", s.version, s.protocol),
        ),
    ];
    for (name, value) in rows {
        writeln!(out, "{name:<13}{value}")?;
    }
    Ok(())
}
