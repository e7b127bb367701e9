//! What the backends share: the chunk size of stored bodies, where a
//! fetched body goes, random tokens for claims and generations, private
//! directories, rate-limit marks, and the deadline every wait counts down.
use std::fs::{DirBuilder, File, FileTimes, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The largest piece a server backend stores or fetches a body in: large
/// enough to amortise a round trip, small enough to bound memory.
#[allow(dead_code)] // each user is a cargo feature
pub const CHUNK: usize = 1 << 20;

/// Where a fetched body of `len` bytes goes: a small one in RAM (a memfd,
/// on Linux: no inode made and freed on disk for each hit), else `big()`
/// (a temp file on disk: a tmpfs /tmp would hold a 1 GiB output in RAM).
#[allow(dead_code)] // each user is a cargo feature
#[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
pub fn scratch(len: u64, big: impl FnOnce() -> io::Result<File>) -> anyhow::Result<File> {
    #[cfg(target_os = "linux")]
    if len <= CHUNK as u64
        && let Ok(fd) = rustix::fs::memfd_create("cachier-body", rustix::fs::MemfdFlags::CLOEXEC)
    {
        return Ok(File::from(fd));
    }
    anyhow::Context::context(
        big(),
        "cannot create a temp file for the output; check TMPDIR",
    )
}

/// 64 bits nobody else picks: a claim token's tail, a generation id. Not
/// secret, just unique: the time, this process, a counter and the host.
#[allow(dead_code)] // each user is a cargo feature
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(crate::entry::host().as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(out)
}

/// A lease kept by a heartbeat thread (Redis, S3): `beat` runs on its own
/// thread until the lease is dropped, which closes the channel `beat`
/// listens on and waits at most `release_wait` for it to release the claim
/// and end, so a server in trouble does not hold the run up.
#[allow(dead_code)] // each user is a cargo feature
pub struct Heartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    released: std::sync::mpsc::Receiver<()>,
    release_wait: Duration,
}

#[allow(dead_code)] // each user is a cargo feature
impl Heartbeat {
    pub fn start(
        release_wait: Duration,
        beat: impl FnOnce(std::sync::mpsc::Receiver<()>) + Send + 'static,
    ) -> Heartbeat {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (done, released) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            beat(stopped);
            let _ = done.send(());
        });
        Heartbeat {
            stop: Some(stop),
            released,
            release_wait,
        }
    }
}

impl super::Lease for Heartbeat {}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        let _ = self.released.recv_timeout(self.release_wait);
    }
}

/// Create `path` and its parents with mode 0700 (not chmod after the fact).
pub fn make_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// Replace `path` with `bytes` whole: written to a temp file named
/// `prefix…` beside it (0600, in a 0700 dir made if missing), then renamed,
/// so a reader sees the old file or the new one, never a part.
pub fn write_whole(path: &Path, prefix: &str, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    make_dir(dir)?;
    // tempfile creates 0600 files.
    let mut tmp = tempfile::Builder::new().prefix(prefix).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Open `path` to read and write, made with mode 0600 if missing (never
/// chmod after the fact, never truncated): a lock file, a database.
pub fn open_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// True at most once per `interval` for `what`, across processes: a mark
/// file in `dir` (made 0700 if missing), locked while it is checked and
/// renewed, so of racing callers exactly one sees it due.
pub fn once_per(dir: &Path, what: &str, interval: Duration) -> io::Result<bool> {
    make_dir(dir)?;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(what))?;
    if file.try_lock().is_err() {
        return Ok(false);
    }
    let stat = file.metadata()?;
    let fresh = stat.len() > 0 && stat.modified()?.elapsed().is_ok_and(|age| age < interval);
    if fresh {
        return Ok(false);
    }
    file.set_len(1)?;
    file.set_times(FileTimes::new().set_modified(SystemTime::now()))?;
    Ok(true)
}

/// When a wait gives up: never (no bound, or one past what the clock can
/// count), or at an instant. All arithmetic saturates.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// `limit` from now; `None` waits for as long as it takes.
    pub fn after(limit: Option<Duration>) -> Deadline {
        Deadline(limit.and_then(|l| Instant::now().checked_add(l)))
    }

    /// What is left, at most `cap`; zero once passed.
    pub fn left(self, cap: Duration) -> Duration {
        match self.0 {
            Some(at) => at.saturating_duration_since(Instant::now()).min(cap),
            None => cap,
        }
    }

    pub fn passed(self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }

    /// What is left, or `None` without a bound.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // the memory daemon is Linux-only
    pub fn remaining(self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate() {
        let never = Deadline::after(None);
        assert!(!never.passed());
        assert_eq!(never.left(Duration::from_secs(2)), Duration::from_secs(2));
        assert!(!Deadline::after(Some(Duration::MAX)).passed());
        let now = Deadline::after(Some(Duration::ZERO));
        assert!(now.passed());
        assert_eq!(now.left(Duration::from_secs(2)), Duration::ZERO);
        assert_eq!(now.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(super::random_u64(), super::random_u64());
    }
}
