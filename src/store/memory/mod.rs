//! The `memory` store: not built yet.
use super::Store;
use crate::settings::Settings;

/// Whether the settings this backend needs (its URL) are usable.
pub fn check(_settings: &Settings) -> Result<(), String> {
    Ok(())
}

pub fn open(_settings: &Settings) -> Box<dyn Store> {
    super::unavailable::unbuilt("the memory daemon", "memory")
}
