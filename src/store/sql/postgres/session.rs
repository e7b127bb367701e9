//! A PostgreSQL session in which every network step has a deadline:
//! connecting, TLS, startup and authentication, each statement, each row of
//! a result. A step is cut once no byte has moved on the session's socket
//! for its deadline (see `socket.rs`), so a server that accepts and never
//! answers, or stops answering mid-run, costs one deadline, never a hang;
//! one that answers slowly but steadily is not cut. tokio-postgres on a
//! runtime of our own: a step that times out is simply dropped (the
//! synchronous `postgres` client bounds only the TCP connect, and its
//! `Drop` waits for answers still owed).
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, TargetSessionAttrs};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, Row, SimpleQueryMessage};

use super::socket::{self, Watch, Watched};

/// Connecting: the TCP connect, then each step of TLS, startup and
/// authentication, may wait this long for the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A statement, or a row of a result being streamed, may wait this long
/// with no byte moving.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// Likewise, a statement over the whole cache (`ls`, `stats`, `clear`,
/// `gc`), which a large cache may need longer for.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(60);
/// A polite close (the Terminate message) of a healthy session.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// A statement that failed: the server's error, or no answer in time.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error("PostgreSQL at {place} did not answer within {} s", after.as_secs())]
    Silent { place: String, after: Duration },
}

impl PgError {
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            PgError::Db(e) => e.code(),
            PgError::Silent { .. } => None,
        }
    }
}

/// The one runtime of every PostgreSQL session of the process, made on
/// first use and never torn down (a teardown would wait for a name lookup
/// that hangs). It has no thread of its own: a session's steps drive it.
pub fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the PostgreSQL client's runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// `fut`, or `None` once no byte has moved on `watch`'s socket for `quiet`
/// since `fut` started.
async fn quietly<F: Future>(watch: &Watch, quiet: Duration, fut: F) -> Option<F::Output> {
    let start = Instant::now();
    let mut fut = pin!(fut);
    loop {
        let left = quiet.saturating_sub(watch.quiet(start));
        if left.is_zero() {
            return None;
        }
        if let Ok(out) = tokio::time::timeout(left, fut.as_mut()).await {
            return Some(out);
        }
    }
}

/// Runs a session's steps, each cut after a period of silence (a step has
/// no fixed end: a large answer may stream for long), and remembers whether
/// one was cut. Waits count down a `kit::Deadline`; this bounds silence.
#[derive(Clone)]
pub struct Steps {
    rt: &'static Runtime,
    place: Rc<str>,
    watch: Arc<Watch>,
    silent: Rc<Cell<bool>>,
}

impl Steps {
    /// `fut` (one statement) within [`OP_TIMEOUT`].
    pub fn run<T>(
        &self,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, PgError> {
        self.within(OP_TIMEOUT, fut)
    }

    /// `fut`, cut once no byte has moved for `quiet`. Cut, the session is
    /// given up: what the server still owes would arrive out of turn.
    pub fn within<T>(
        &self,
        quiet: Duration,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, PgError> {
        let silent = || PgError::Silent {
            place: self.place.to_string(),
            after: quiet,
        };
        if self.silent.get() {
            return Err(silent());
        }
        match self.rt.block_on(quietly(&self.watch, quiet, fut)) {
            Some(out) => Ok(out?),
            None => {
                self.silent.set(true);
                Err(silent())
            }
        }
    }
}

/// The connection's task: on drop, a healthy session says goodbye (briefly),
/// a silent one is cut at once.
struct Task {
    handle: JoinHandle<()>,
    steps: Steps,
}

impl Drop for Task {
    fn drop(&mut self) {
        let rt = self.steps.rt;
        // (The timer is made inside the runtime: made outside, it panics.)
        let settle = |handle: &mut JoinHandle<()>| {
            rt.block_on(async { tokio::time::timeout(CLOSE_TIMEOUT, handle).await.ok() })
        };
        if !self.steps.silent.get() {
            // The client (dropped before this) closed the request channel:
            // the connection sends Terminate and ends.
            settle(&mut self.handle);
        }
        // (A finished handle must not be polled again.)
        if !self.handle.is_finished() {
            self.handle.abort();
            // Polled once more, the aborted task drops its socket.
            settle(&mut self.handle);
        }
    }
}

/// One connection. Fields drop in order: the client, then its task.
pub struct Session {
    pub client: Client,
    pub d: Steps,
    _task: Task,
}

impl Session {
    /// Connect to the first of `config`'s hosts that takes us, each step
    /// within [`CONNECT_TIMEOUT`]. `place` names the server in messages
    /// (never with the password).
    pub fn connect<T>(place: &Rc<str>, config: &Config, mut tls: T) -> Result<Session>
    where
        T: MakeTlsConnect<Watched> + Send + 'static,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Watched>>::Future: Send,
    {
        let rt = runtime()?;
        let mut last = None;
        for (host, port, name) in socket::targets(config) {
            let tls = tls
                .make_tls_connect(name.as_deref().unwrap_or(""))
                .map_err(|e| anyhow!("TLS: {}", e.into()))?;
            match Session::connect_one(rt, place, config, tls, (&host, port)) {
                Ok(session) => return Ok(session),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no host to connect to")))
    }

    fn connect_one<T>(
        rt: &'static Runtime,
        place: &Rc<str>,
        config: &Config,
        tls: T,
        (host, port): (&Host, u16),
    ) -> Result<Session>
    where
        T: TlsConnect<Watched> + Send + 'static,
        T::Stream: Send + 'static,
    {
        let silent = || anyhow!("no answer within {} s", CONNECT_TIMEOUT.as_secs());
        let watch = Watch::new();
        let made = rt.block_on(async {
            let stream = match socket::open(host, port, config, CONNECT_TIMEOUT, &watch).await {
                Ok(stream) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err(silent()),
                Err(e) => return Err(anyhow!("error connecting to server: {e}")),
            };
            match quietly(&watch, CONNECT_TIMEOUT, config.connect_raw(stream, tls)).await {
                Some(made) => Ok(made?),
                None => Err(silent()),
            }
        });
        let (client, connection) = made?;
        let handle = rt.spawn(async move {
            let _ = connection.await;
        });
        let d = Steps {
            rt,
            place: place.clone(),
            watch,
            silent: Rc::new(Cell::new(false)),
        };
        let session = Session {
            client,
            d: d.clone(),
            _task: Task { handle, steps: d },
        };
        session.check_attrs(config.get_target_session_attrs())?;
        Ok(session)
    }

    /// `target_session_attrs` from the URL: a server that cannot write (or
    /// can) is refused, and the next host tried.
    fn check_attrs(&self, want: TargetSessionAttrs) -> Result<()> {
        if want == TargetSessionAttrs::Any {
            return Ok(());
        }
        let shown = self
            .d
            .within(
                CONNECT_TIMEOUT,
                self.client.simple_query("SHOW transaction_read_only"),
            )
            .context("cannot check target_session_attrs")?;
        let read_only = shown.iter().any(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0) == Some("on"),
            _ => false,
        });
        match (want, read_only) {
            (TargetSessionAttrs::ReadWrite, true) => {
                Err(anyhow!("the database does not allow writes"))
            }
            (TargetSessionAttrs::ReadOnly, false) => Err(anyhow!("the database is not read only")),
            _ => Ok(()),
        }
    }

    /// Whether this session can take no more statements: the server went
    /// silent or the connection closed.
    pub fn is_broken(&self) -> bool {
        self.d.silent.get() || self.client.is_closed()
    }

    /// Whether a step timed out: the server hangs.
    pub fn went_silent(&self) -> bool {
        self.d.silent.get()
    }

    pub fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, PgError> {
        self.d.run(self.client.query_one(sql, params))
    }

    pub fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, PgError> {
        self.d.run(self.client.query_opt(sql, params))
    }

    pub fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, PgError> {
        self.d.run(self.client.execute(sql, params))
    }

    /// As [`Session::query_opt`] with the parameters' types given, so the
    /// statement goes out with its parameters: one round trip, not two (a
    /// hit's statements; the others are prepared first).
    pub fn query_typed_opt(&self, sql: &str, params: &[Typed<'_>]) -> Result<Option<Row>, PgError> {
        self.d.run(self.client.query_typed_opt(sql, params))
    }

    /// A statement that returns no rows, as [`Session::query_typed_opt`].
    pub fn execute_typed(&self, sql: &str, params: &[Typed<'_>]) -> Result<(), PgError> {
        self.d.run(self.client.query_typed(sql, params)).map(drop)
    }
}

/// A statement parameter with its type.
pub type Typed<'a> = (&'a (dyn ToSql + Sync), Type);
