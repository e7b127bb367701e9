//! Servers a test starts, stops and starts again itself: Redis, PostgreSQL
//! and SecantusDB (the MongoDB-protocol server), each on a free loopback
//! port with its data in a temp dir, started as scripts/servers/*.sh start
//! them. A test that restarts a server must never touch the shared ones
//! the rest of the suite uses. A missing server binary fails the test under
//! `CI=true` and skips it loudly otherwise.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::backend::require_program;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Postgres,
    Mongo,
}

pub struct OwnServer {
    kind: Kind,
    /// `redis-server`, PostgreSQL's bin directory, or `secantusd-py`.
    program: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    /// The server process (Redis, SecantusDB; PostgreSQL runs under pg_ctl).
    child: Option<Child>,
    /// More arguments for the server (SecantusDB's `--auth`), from the next start.
    pub extra: Vec<String>,
}

/// How long a server may take to come up (SecantusDB is Python).
const UP: Duration = Duration::from_secs(60);

impl OwnServer {
    /// A fresh server of `kind`, up; `None` when its binary is missing
    /// (outside CI, after a loud message).
    pub fn start(kind: Kind) -> Option<OwnServer> {
        let (found, hint) = match kind {
            Kind::Redis => (on_path("redis-server"), "apt-get install redis-server"),
            Kind::Postgres => (pg_bindir(), "apt-get install postgresql"),
            Kind::Mongo => (secantus(), "scripts/test installs SecantusDB"),
        };
        let program = require_program(&format!("{kind:?} restart"), found, hint)?;
        let mut server = OwnServer {
            kind,
            program,
            dir: tempfile::tempdir().unwrap(),
            port: 0,
            child: None,
            extra: Vec::new(),
        };
        if kind == Kind::Postgres {
            server.initdb();
        }
        // A free port can be taken between our look and the server's bind.
        for _ in 0..3 {
            server.port = free_port();
            if server.try_up() {
                return Some(server);
            }
            server.stop();
        }
        panic!("{kind:?} would not start: {}", server.log());
    }

    /// The URL cachier is given.
    pub fn url(&self) -> String {
        let port = self.port;
        match self.kind {
            Kind::Redis => format!("redis://127.0.0.1:{port}/0"),
            Kind::Postgres => format!("postgresql://cachier@127.0.0.1:{port}/postgres"),
            Kind::Mongo => format!("mongodb://127.0.0.1:{port}/cachier"),
        }
    }

    /// Stop it as a crash would: SIGKILL (PostgreSQL: `pg_ctl -m immediate`,
    /// which kills its sessions and needs recovery at the next start).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.kind == Kind::Postgres {
            let data = self.path("data");
            let _ = self
                .pg("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
                .output();
        }
    }

    /// Start it again, on the same port, with the data it kept.
    /// Stop the server as an operator would (SIGTERM), so that it saves
    /// what it holds in memory (SecantusDB's users).
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + UP;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn up(&mut self) {
        assert!(
            self.try_up(),
            "{:?} would not restart: {}",
            self.kind,
            self.log()
        );
    }

    fn try_up(&mut self) -> bool {
        let port = self.port.to_string();
        match self.kind {
            Kind::Redis => {
                let mut cmd = Command::new(&self.program);
                cmd.args(["--bind", "127.0.0.1", "--port", &port, "--save", ""])
                    .args(["--appendonly", "no", "--dir", &self.path("")]);
                self.spawn(cmd);
            }
            Kind::Mongo => {
                let mut cmd = Command::new(&self.program);
                cmd.args(["--host", "127.0.0.1", "--port", &port]).args([
                    "--storage-path",
                    &self.path("data"),
                    "--log-level",
                    "WARNING",
                ]);
                cmd.args(&self.extra);
                self.spawn(cmd);
            }
            Kind::Postgres => {
                let opts = format!(
                    "-h 127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=100",
                    self.path("")
                );
                let (data, log) = (self.path("data"), self.path("server.log"));
                let started = self
                    .pg("pg_ctl", &["-D", &data, "-l", &log, "-w", "-t", "60"])
                    .args(["-o", &opts, "start"])
                    .output()
                    .unwrap();
                return started.status.success();
            }
        }
        let deadline = Instant::now() + UP;
        while Instant::now() < deadline {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            if exited {
                return false; // e.g. its port was taken
            }
            if self.answers() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn spawn(&mut self, mut cmd: Command) {
        let log = std::fs::File::create(self.path("server.log")).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().unwrap());
    }

    /// Whether the server answers a ping (Redis, SecantusDB).
    fn answers(&self) -> bool {
        match self.kind {
            Kind::Redis => redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok(),
            #[cfg(feature = "mongo")]
            Kind::Mongo => {
                let url = format!(
                    "{}?directConnection=true&serverSelectionTimeoutMS=500",
                    self.url()
                );
                let ping = mongodb::sync::Client::with_uri_str(url).and_then(|c| {
                    c.database("admin")
                        .run_command(mongodb::bson::doc! { "ping": 1 })
                        .run()
                });
                // Under `--auth` a refusal is an answer too.
                ping.as_ref()
                    .map_or_else(|e| e.to_string().contains("auth"), |_| true)
            }
            _ => true,
        }
    }

    /// A PostgreSQL program, run as the `postgres` user when we are root
    /// (initdb and the server refuse root).
    fn pg(&self, program: &str, args: &[&str]) -> Command {
        let path = self.program.join(program);
        let mut cmd = if rustix::process::getuid().is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    fn initdb(&self) {
        if rustix::process::getuid().is_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:", &self.path("")])
                .status()
                .unwrap();
            assert!(chown.success(), "cannot give the test dir to postgres");
        }
        let data = self.path("data");
        let args = ["-D", &data, "-U", "cachier", "--auth=trust", "--no-sync"];
        let out = self
            .pg("initdb", &args)
            .args(["-E", "UTF8", "--locale=C"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The newest PostgreSQL's bin directory (Debian keeps it off PATH).
fn pg_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|(_, dir)| dir)
        .chain(on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf)))
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

/// SecantusDB in `$MONGO_VENV` (scripts/servers/mongo.sh: by default
/// `target/test-servers/mongo-venv`).
fn secantus() -> Option<PathBuf> {
    let venv = std::env::var_os("MONGO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-servers/mongo-venv")
        });
    let venv = if venv.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(venv)
    } else {
        venv
    };
    Some(venv.join("bin/secantusd-py")).filter(|p| p.is_file())
}
