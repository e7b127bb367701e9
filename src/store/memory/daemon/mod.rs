//! The memory backend's daemon: one per user, holding entries in RAM and
//! serving every cachier process of that user over a Unix socket.
//!
//! Started on first use of `--backend memory` (or `cachier daemon start`),
//! detached in its own session; see `client.rs` for how exactly one starts,
//! `paths.rs` for where it lives, `proto.rs` for the protocol, `state.rs`
//! for eviction and claims. It exits after `idle_timeout` (default 15m)
//! with no request and no open connection, on `cachier daemon stop`, and on
//! SIGTERM. A claim belongs to the owner's connection: when the owner dies,
//! the kernel closes it and the daemon frees the claim at once.
// (`paths` is the per-user runtime dir, which other parts use on every
// platform; the daemon itself needs Linux.)
#[cfg(target_os = "linux")]
mod body;
#[cfg(target_os = "linux")]
pub mod client;
pub mod paths;
#[cfg(target_os = "linux")]
pub mod proto;
#[cfg(target_os = "linux")]
mod server;
#[cfg(target_os = "linux")]
mod session;
#[cfg(target_os = "linux")]
mod start;
#[cfg(target_os = "linux")]
mod state;
pub mod status;

#[cfg(target_os = "linux")]
pub use server::serve;
