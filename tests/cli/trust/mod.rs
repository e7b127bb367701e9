//! Shared caches a fleet can trust (SPEC §1.9): read-only callers (also
//! with credentials that can only read), entry format versions, the outage
//! breaker, and `stats --format openmetrics`.
mod breaker;
mod credentials;
mod formats;
mod local;
mod openmetrics;
mod read_only;
