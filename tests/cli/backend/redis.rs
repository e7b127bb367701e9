//! The redis suite's hooks: not written yet.
use std::path::Path;
use std::time::Duration;

pub fn available(_cluster: bool) -> bool {
    unimplemented!("redis suite")
}
pub fn set_up(_dir: &Path, _cluster: bool) {}
pub fn tear_down(_dir: &Path, _cluster: bool) {}
pub fn env(_dir: &Path, _cluster: bool) -> Vec<(String, String)> {
    Vec::new()
}
pub fn age_entries(_dir: &Path, _cluster: bool, _by: Duration) {
    unimplemented!("redis suite")
}
pub fn damage_entries(_dir: &Path, _cluster: bool, _truncate: bool) {
    unimplemented!("redis suite")
}
pub fn count_entries(_dir: &Path, _cluster: bool) -> usize {
    unimplemented!("redis suite")
}
