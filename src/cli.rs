//! The command-line grammar (clap derive); it also feeds completions and man pages.
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::units::{parse_duration, parse_size};

pub use crate::backend_flags::BackendFlags;

/// Memoize shell commands: the second run with the same inputs replays the
/// stored stdout, stderr and exit code at once.
#[derive(Debug, Parser)]
#[command(
    name = "cachier",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands; those that pick and reach the
/// backend are listed under their own heading.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Backend")]
pub struct GlobalArgs {
    /// Where entries are kept: file (alias pickle), sql, redis, mongo or memory;
    /// a comma-separated list stacks tiers, looked up in order (memory,redis,sql)
    /// [env: CACHIER_BACKEND]
    #[arg(long, global = true, value_name = "NAME[,NAME...]")]
    pub backend: Option<String>,
    /// With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)
    #[arg(long, global = true, value_name = "NAME")]
    pub tier: Option<String>,
    /// Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Each backend's own flags (`--redis-url`, ...), from the registry.
    #[command(flatten)]
    pub backend_flags: BackendFlags,
    /// Turn cache problems into errors (exit 125) instead of running uncached
    #[arg(long, global = true, help_heading = None)]
    pub strict: bool,
    /// Serve hits but write nothing: no entry, counter, claim or schema
    /// [env: CACHIER_READ_ONLY]
    #[arg(long, global = true, help_heading = None)]
    pub read_only: bool,
    /// Say on stderr whether a run hit or missed, and why it waited
    #[arg(short, long, global = true, help_heading = None)]
    pub verbose: bool,
}

/// `--stale-if-error`'s bound on the stale entry's age (`None`: any age).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleBound(pub Option<Duration>);

/// `--stale-if-error=DUR`, or `forever` (no bound; the bare flag).
pub(crate) fn parse_stale_bound(text: &str) -> Result<StaleBound, String> {
    match text {
        "forever" => Ok(StaleBound(None)),
        _ => parse_duration(text).map(|d| StaleBound(Some(d))),
    }
}

/// Subcommands build their arguments only when chosen: a hit pays for `run` alone.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Run a command, or replay its stored result
    Run(RunArgs),
    /// Print the key a command line maps to (--explain: every component)
    Key(KeyCmdArgs),
    /// Remove entries: all, or those matching the filters or a command line
    Clear(ClearArgs),
    /// Entries, bytes, hits, misses, waits and time saved, per namespace
    Stats(StatsArgs),
    /// List entries: key, namespace, argv, age, size, exit code, hits
    Ls(LsArgs),
    /// Print an entry's stdout, stderr or metadata
    Show(ShowArgs),
    /// Store a given result, as if the command had run
    Precache(PrecacheArgs),
    /// Write entries to stdout in a portable, versioned stream
    Export(ExportArgs),
    /// Read entries written by `cachier export` from stdin
    Import(ImportArgs),
    /// Evict least-recently-used entries down to max_size
    Gc(GcArgs),
    /// Print where the cache lives
    Path,
    /// Read and edit the config file
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Start, stop or inspect the memory backend's per-user daemon
    #[command(subcommand)]
    Daemon(DaemonCmd),
    /// Make an Ed25519 key pair for signed entries; print the public key
    Keygen(KeygenArgs),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where the private key goes: a new file (mode 0600, never
    /// overwritten), or `-` for stdout when it is not a terminal (the
    /// public key then goes to stderr)
    #[arg(value_name = "FILE")]
    pub out: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Only entries older than stale_after (see --stale-after)
    #[arg(long, conflicts_with = "older_than")]
    pub stale: bool,
    /// The freshness bound --stale uses [env: CACHIER_STALE_AFTER]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub stale_after: Option<Duration>,
    /// Only entries older than this
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub older_than: Option<Duration>,
    /// Also wipe leftover claims of dead computations (never needed to unstick a caller)
    #[arg(long)]
    pub being_calculated: bool,
    /// Key options; without a command, --name filters by namespace and
    /// --key by key prefix (8+ hex digits)
    #[command(flatten)]
    pub opts: KeyOpts,
    /// Clear just the entry this command line would hit
    #[arg(
        trailing_var_arg = true,
        value_name = "CMD",
        value_parser = clap::value_parser!(OsString)
    )]
    pub command: Vec<OsString>,
}

/// How `stats` prints its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsFormat {
    Table,
    Json,
    Openmetrics,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this namespace
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Machine-readable output (same as --format json)
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Output format: a table, JSON, or OpenMetrics text for Prometheus
    /// (node_exporter's textfile collector)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<StatsFormat>,
    /// Zero the hit, miss, wait and stale-serve counters
    #[arg(long)]
    pub reset: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this namespace
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The entry's key, or a unique prefix of 8+ hex digits
    pub key: String,
    /// Print the stored stdout, byte for byte
    #[arg(long, group = "what")]
    pub stdout: bool,
    /// Print the stored stderr, byte for byte
    #[arg(long, group = "what")]
    pub stderr: bool,
    /// Print the metadata as JSON
    #[arg(long, group = "what")]
    pub json: bool,
    /// List the stored --output files: kind, mode, size, path (with --json, as JSON; each
    /// path as {"text": ...}, or {"bytes": BASE64} when it is not UTF-8)
    #[arg(long, conflicts_with_all = ["stdout", "stderr"])]
    pub outputs: bool,
}

#[derive(Debug, Args)]
pub struct PrecacheArgs {
    /// File holding the stdout to store (`-` for standard input)
    #[arg(long = "stdout", value_name = "FILE")]
    pub stdout_file: PathBuf,
    /// File holding the stderr to store
    #[arg(long = "stderr", value_name = "FILE")]
    pub stderr_file: Option<PathBuf>,
    /// The exit code to store
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub exit_code: i32,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this namespace
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Sign every entry not already signed by a trusted key with your
    /// signing key, instead of refusing it
    #[arg(long)]
    pub sign: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Evict down to this size instead of the configured max_size (e.g. 500M)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print one setting's value from the config file
    Get { key: String },
    /// Set a setting in the config file
    Set { key: String, value: String },
    /// Remove a setting from the config file
    Unset { key: String },
    /// Print every setting in the config file
    List,
}

#[derive(Debug, Subcommand)]
pub enum DaemonCmd {
    /// Start the daemon in the background, unless it runs already
    Start {
        /// Exit after this long without requests [env: CACHIER_IDLE_TIMEOUT] [default: 15m]
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        idle_timeout: Option<Duration>,
    },
    /// Stop the daemon; the entries it holds are gone
    Stop,
    /// Pid, uptime, entries, bytes and hits of the running daemon (exit 3 if none runs)
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon in the foreground (what `start` and first uses spawn)
    #[command(hide = true)]
    Serve {
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        idle_timeout: Option<Duration>,
    },
    /// Test only: make every entry MS milliseconds older
    #[command(hide = true)]
    DebugAge { ms: u64 },
    /// Test only: damage every entry (flip its first byte, or --truncate it)
    #[command(hide = true)]
    DebugDamage {
        #[arg(long)]
        truncate: bool,
    },
}

// What makes two invocations "the same" (shared by run, key, clear, precache).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Key (what makes two runs the same)")]
pub struct KeyOpts {
    /// Key on this environment variable (repeatable; globs such as 'AWS_*')
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
    /// Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)
    #[arg(long)]
    pub all_env: bool,
    /// Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)
    #[arg(long = "input", value_name = "PATH")]
    pub input: Vec<OsString>,
    /// Walk --input directories and globs whole: .git/ and ignored files count too
    #[arg(long)]
    pub no_ignore: bool,
    /// Store and restore the files the command makes: a file, directory or glob under the working directory ('!GLOB' excludes; repeatable)
    #[arg(long = "output", value_name = "PATH|GLOB")]
    pub output: Vec<OsString>,
    /// Read standard input whole, key on it and feed it to the command
    #[arg(long)]
    pub stdin: bool,
    /// Extra key material, e.g. a commit or a version tag (repeatable)
    #[arg(long = "key", value_name = "TEXT")]
    pub extra: Vec<String>,
    /// Namespace for stats, ls and clear [default: the program's base name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Leave the working directory out of the key
    #[arg(long)]
    pub no_cwd: bool,
    /// Leave the program's content out of the key (./tool, or the script in python3 x.py); it stays keyed by name
    #[arg(long)]
    pub no_program: bool,
}

// Key options and the command line they apply to.
#[derive(Debug, Args, Clone, Default)]
pub struct KeyArgs {
    #[command(flatten)]
    pub opts: KeyOpts,
    /// The command and its arguments
    #[arg(
        help_heading = None,
        required = true,
        trailing_var_arg = true,
        value_name = "CMD",
        value_parser = clap::value_parser!(OsString)
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct KeyCmdArgs {
    /// Print every key component with its hash, and why the last entry differs
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Recompute entries older than this (90s, 15m, 1h, 2d) [env: CACHIER_STALE_AFTER]
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Freshness")]
    pub stale_after: Option<Duration>,
    /// Never serve an entry older than this, even with --next-time
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Freshness")]
    pub max_age: Option<Duration>,
    /// Serve a stale entry at once and refresh it in the background
    #[arg(long, help_heading = "Freshness")]
    pub next_time: bool,
    /// If the command fails (an exit code not stored), serve the stale entry
    /// instead, if any no older than DUR (default: any; --max-age still
    /// bounds it); the command's output is held back until its exit code is known
    #[arg(long, value_name = "DUR", num_args = 0..=1, require_equals = true,
          default_missing_value = "forever", value_parser = parse_stale_bound,
          help_heading = "Freshness")]
    pub stale_if_error: Option<StaleBound>,
    /// Run and store even if a fresh entry exists
    #[arg(long, help_heading = "Freshness")]
    pub overwrite: bool,
    /// Run the command without reading or writing the cache
    #[arg(long, help_heading = "Freshness")]
    pub skip_cache: bool,
    /// Exit codes whose results are stored
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "0",
        help_heading = "What is stored"
    )]
    pub cache_exit_codes: Vec<i32>,
    /// Store the result whatever the exit code
    #[arg(long, help_heading = "What is stored")]
    pub cache_failures: bool,
    /// Do not store a result whose stdout is empty
    #[arg(long, help_heading = "What is stored")]
    pub no_empty: bool,
    /// Pass larger output through without storing it (e.g. 50M) [env: CACHIER_ENTRY_SIZE_LIMIT]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "What is stored")]
    pub entry_size_limit: Option<u64>,
    /// Remove this namespace's stale entries in the background (at most once per cleanup_interval)
    #[arg(long, help_heading = "Freshness")]
    pub cleanup_stale: bool,
    /// Stop waiting for another caller's run after this long and run too (0 = never)
    /// [env: CACHIER_WAIT_FOR_CALC_TIMEOUT]
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Waiting")]
    pub wait_for_calc_timeout: Option<Duration>,
    /// Internal: the detached refresh started by --next-time
    #[arg(long, hide = true)]
    pub refresh: bool,
}
