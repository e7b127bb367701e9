//! A server backend (or SQLite) with its lookups pooled through the daemon
//! (`CACHIER_POOL=1`; every other suite runs with the pool off): the same
//! hooks as the plain backend, and `tear_down` also SIGKILLs the test's
//! daemon, which holds the pooled connections, so none outlives the test.
use std::path::Path;
use std::time::Duration;

use super::TestBackend;

pub struct Pooled(pub &'static dyn TestBackend);

impl TestBackend for Pooled {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn available(&self) -> bool {
        self.0.available()
    }
    fn set_up(&self, dir: &Path) {
        self.0.set_up(dir)
    }
    fn tear_down(&self, dir: &Path) {
        super::memory::tear_down(dir);
        self.0.tear_down(dir)
    }
    fn env(&self, dir: &Path) -> Vec<(String, String)> {
        let mut env = self.0.env(dir);
        env.push(("CACHIER_POOL".to_string(), "1".to_string()));
        env
    }
    fn age_entries(&self, dir: &Path, by: Duration) {
        self.0.age_entries(dir, by)
    }
    fn damage_entries(&self, dir: &Path, truncate: bool) {
        self.0.damage_entries(dir, truncate)
    }
    fn count_entries(&self, dir: &Path) -> usize {
        self.0.count_entries(dir)
    }
}
