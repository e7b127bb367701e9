//! Pooled server connections: a PostgreSQL, Redis or MongoDB store's
//! lookups and hit counts go through the per-user daemon (the memory
//! backend's), which keeps its connections open between runs, so a hit
//! pays no connect, authentication or handshake. Everything else (misses,
//! claims, management) goes to the server directly, as does all of it
//! when no daemon can be had. The daemon pools a store under the hash of
//! its backend, settings and credentials, so only a caller presenting the
//! same ones shares it; signatures and trust are checked here, in the
//! client, as for any store. Config `pool = false` (`CACHIER_POOL=0`)
//! turns it off.
#[cfg(target_os = "linux")]
mod client;
#[cfg(target_os = "linux")]
mod serve;
#[cfg(target_os = "linux")]
mod tally;
#[cfg(target_os = "linux")]
mod target;

#[cfg(target_os = "linux")]
pub use serve::{Held, drop_thread_stores, open_servers, warm};
#[cfg(target_os = "linux")]
pub use tally::flush;

use super::Store;
use super::param::{Common, Section};
use super::registry::Backend;

/// `store`, its lookups pooled through the daemon when `on` and its
/// backend talks to a server of these settings (Linux only).
#[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
pub fn wrap(
    backend: Backend,
    section: &Section,
    common: &Common,
    on: bool,
    store: Box<dyn Store>,
) -> Box<dyn Store> {
    #[cfg(target_os = "linux")]
    if on
        && (backend.def().pooled)(section)
        && let Ok(target) = target::encode(backend, section, common)
    {
        return Box::new(client::Pooled::new(store, target, common.verbose));
    }
    store
}
