//! The daemon process: bind the socket, accept connections of our own user
//! only (peer credentials), a thread per connection, and exit after the idle
//! timeout (no request and no open connection for that long), on `stop` or
//! on SIGTERM/SIGINT/SIGHUP, removing the socket and pid file.
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::event::{PollFd, PollFlags, Timespec};

use super::paths;
use super::session;
use super::state::Shared;

/// Our directory, whose socket and pid file go on exit.
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Remove our socket and pid file (if still ours), and exit.
pub fn exit() -> ! {
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
    listener.set_nonblocking(true)?;
    let pid_file = paths::pid_file(dir);
    let tmp = dir.join(format!("memory.pid.{}", std::process::id()));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, &pid_file)?;
    let _ = DIR.set(dir.to_path_buf());
    on_signals_exit()?;
    ready()?;

    let shared = Arc::new(Shared::new(cap, idle));
    shared.lock().last = Some(Instant::now());
    let me = rustix::process::getuid();
    let mut next_conn = 0u64;
    loop {
        let wait = {
            let st = shared.lock();
            let since = st.last.map_or(Duration::ZERO, |t| t.elapsed());
            if st.active == 0 && since >= idle {
                break;
            }
            if st.active == 0 { idle - since } else { idle }
        };
        let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: 3600,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(&listener, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => continue,
        };
        // Another user's process never gets a word from us.
        let ours = rustix::net::sockopt::socket_peercred(stream.as_fd()).is_ok_and(|c| c.uid == me);
        if !ours || stream.set_nonblocking(false).is_err() {
            continue;
        }
        next_conn += 1;
        let conn = next_conn;
        {
            let mut st = shared.lock();
            st.active += 1;
            st.last = Some(Instant::now());
        }
        let worker = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{conn}"))
            .spawn(move || session::serve(&worker, conn, stream));
        if spawned.is_err() {
            // Out of threads: the connection was dropped; count it closed.
            shared.hang_up(conn);
        }
    }
    exit()
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
