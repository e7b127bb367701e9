//! `cachier daemon start|stop|status`: the memory backend's daemon by hand
//! (it also starts by itself on first use). `serve` is what runs in the
//! daemon process; `debug-age` and `debug-damage` exist for the tests only.
use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;

use crate::cli::DaemonCmd;
use crate::daemon::client::{self, Start, unexpected};
use crate::daemon::proto::{Req, Resp, Status};
use crate::daemon::{self, paths};
use crate::human;
use crate::settings::Settings;

/// `status`'s exit code when no daemon runs (as LSB init scripts do).
const NOT_RUNNING: u8 = 3;

pub fn run(settings: &Settings, cmd: &DaemonCmd) -> Result<u8> {
    let dir = paths::dir();
    let mut out = std::io::stdout().lock();
    match cmd {
        DaemonCmd::Start { idle_timeout } => {
            if let Some(conn) = client::running(&dir)? {
                writeln!(out, "the memory daemon already runs (pid {})", conn.pid)?;
                return Ok(0);
            }
            let start = Start {
                dir: dir.clone(),
                max_memory: settings.max_memory,
                idle_timeout: idle_timeout.unwrap_or(settings.idle_timeout),
            };
            let notice = |what: &str| crate::warn::line(what);
            let conn = client::connect(&start, &notice)?;
            writeln!(
                out,
                "started the memory daemon (pid {}) on {}",
                conn.pid,
                paths::socket(&dir).display()
            )?;
            Ok(0)
        }
        DaemonCmd::Stop => {
            let stopped = match client::running(&dir) {
                Ok(Some(mut conn)) => {
                    let pid = conn.pid;
                    // The daemon exits right after answering.
                    let _ = conn.call(&Req::Stop);
                    client::await_exit(pid, client::START_TIMEOUT)?;
                    Some(pid)
                }
                Ok(None) => None,
                // Another version: stop it by its pid file.
                Err(_) => client::terminate(&dir)?,
            };
            match stopped {
                Some(pid) => writeln!(out, "stopped the memory daemon (pid {pid})")?,
                None => writeln!(out, "the memory daemon is not running")?,
            }
            Ok(0)
        }
        DaemonCmd::Status { json } => {
            let Some(mut conn) = client::running(&dir)? else {
                if *json {
                    writeln!(out, "{}", json!({ "running": false }))?;
                } else {
                    writeln!(out, "the memory daemon is not running")?;
                }
                return Ok(NOT_RUNNING);
            };
            let Resp::Status(status) = conn.call(&Req::Status)? else {
                return Err(unexpected());
            };
            let socket = paths::socket(&dir).display().to_string();
            if *json {
                writeln!(out, "{}", status_json(&status, &socket))?;
            } else {
                print_status(&mut out, &status, &socket)?;
            }
            Ok(0)
        }
        DaemonCmd::Serve { idle_timeout } => {
            daemon::serve(
                &dir,
                settings.max_memory,
                idle_timeout.unwrap_or(settings.idle_timeout),
            )?;
            Ok(0)
        }
        DaemonCmd::DebugAge { ms } => debug(&dir, &Req::DebugAge { ms: *ms }),
        DaemonCmd::DebugDamage { truncate } => debug(
            &dir,
            &Req::DebugDamage {
                truncate: *truncate,
            },
        ),
    }
}

fn debug(dir: &std::path::Path, req: &Req) -> Result<u8> {
    let Some(mut conn) = client::running(dir)? else {
        bail!("the memory daemon is not running");
    };
    match conn.call(req)? {
        Resp::Done => Ok(0),
        _ => Err(unexpected()),
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
        "socket": socket,
        "version": s.version,
        "protocol": s.protocol,
    })
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
