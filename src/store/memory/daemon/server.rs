//! The daemon process: bind the socket, accept connections of our own user
//! only (peer credentials), a thread per connection (parked workers take
//! them, so none is made on a client's time), and exit after the idle
//! timeout (no request and no open connection for that long), on `stop` or
//! on SIGTERM/SIGINT/SIGHUP, removing the socket and pid file.
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::paths;
use super::session;
use super::state::Shared;

/// Our directory, whose socket and pid file go on exit.
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Remove our socket and pid file (if still ours), and exit.
pub fn exit() -> ! {
    crate::store::pool::flush();
    if let Some(dir) = DIR.get()
        && paths::read_pid(dir) == Some(std::process::id())
    {
        let _ = std::fs::remove_file(paths::socket(dir));
        let _ = std::fs::remove_file(paths::pid_file(dir));
    }
    std::process::exit(0)
}

/// Serve in this process until idle for `idle`. Says `ready` on stdout once
/// the socket accepts connections, then points stdout at /dev/null.
pub fn serve(dir: &Path, cap: u64, idle: Duration) -> Result<()> {
    let dir = &std::path::absolute(dir)?;
    paths::ensure(dir)?;
    // Keep no directory of the first caller busy.
    let _ = std::env::set_current_dir("/");
    let socket = paths::socket(dir);
    // Whoever started us checked, under the start lock, that no daemon
    // answers there: a file left there is a dead daemon's.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    let pid_file = paths::pid_file(dir);
    let tmp = dir.join(format!("memory.pid.{}", std::process::id()));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, &pid_file)?;
    let _ = DIR.set(dir.to_path_buf());
    on_signals_exit()?;
    raise_fd_limit();
    ready()?;

    let shared = Arc::new(Shared::new(cap, idle));
    shared.lock().last = Some(Instant::now());
    let listener = Arc::new(listener);
    for _ in 0..SPARE_MIN {
        shared.lock().idle_workers += 1;
        spawn_worker(&shared, &listener)?;
    }
    // This thread only watches the clock.
    loop {
        let wait = {
            let st = shared.lock();
            let since = st.last.map_or(Duration::ZERO, |t| t.elapsed());
            if st.active == 0 && since >= idle {
                break;
            }
            if st.active == 0 { idle - since } else { idle }
        };
        std::thread::sleep(wait);
    }
    exit()
}

/// Workers parked in `accept` while no connection needs them: at least
/// this many (so a connection never waits for a thread to be made)...
const SPARE_MIN: u64 = 2;
/// ...and at most this many (more exit after a burst).
const SPARE_MAX: u64 = 4;

fn spawn_worker(shared: &Arc<Shared>, listener: &Arc<UnixListener>) -> Result<()> {
    let (shared, listener) = (shared.clone(), listener.clone());
    std::thread::Builder::new()
        .name("worker".into())
        .spawn(move || worker(&shared, &listener))?;
    Ok(())
}

/// Accept a connection, serve it to its end, and again.
fn worker(shared: &Arc<Shared>, listener: &Arc<UnixListener>) {
    static NEXT_CONN: AtomicU64 = AtomicU64::new(0);
    let me = rustix::process::getuid();
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // Out of descriptors, say: let the clients wait, not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let spawn = {
            let mut st = shared.lock();
            st.idle_workers -= 1;
            let last_one = st.idle_workers == 0;
            if last_one {
                st.idle_workers += 1;
            }
            last_one
        };
        if spawn && spawn_worker(shared, listener).is_err() {
            shared.lock().idle_workers -= 1;
        }
        // Another user's process never gets a word from us.
        let ours = rustix::net::sockopt::socket_peercred(stream.as_fd()).is_ok_and(|c| c.uid == me);
        if ours {
            let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed) + 1;
            {
                let mut st = shared.lock();
                st.active += 1;
                st.last = Some(Instant::now());
            }
            session::serve(shared, conn, stream);
        }
        let mut st = shared.lock();
        if st.idle_workers >= SPARE_MAX {
            drop(st);
            // Its pooled connections close now, while the thread's state
            // is whole: closing a PostgreSQL one during the thread's
            // teardown panics in tokio (its runtime handle is gone).
            crate::store::pool::drop_thread_stores();
            return;
        }
        st.idle_workers += 1;
    }
}

/// Each large entry holds a memfd: allow as many descriptors as we may.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let Some(max) = limit.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(max),
                maximum: Some(max),
            },
        );
    }
}

/// Tell whoever started us that the socket is up; then stdout goes to /dev/null.
fn ready() -> Result<()> {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let null = std::fs::File::options().write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdout(&null)?;
    Ok(())
}

fn on_signals_exit() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                exit();
            }
        })?;
    Ok(())
}
