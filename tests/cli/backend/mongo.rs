//! The mongo suite's hooks: not written yet.
use std::path::Path;
use std::time::Duration;

pub fn available() -> bool {
    unimplemented!("mongo suite")
}
pub fn set_up(_dir: &Path) {}
pub fn tear_down(_dir: &Path) {}
pub fn env(_dir: &Path) -> Vec<(String, String)> {
    Vec::new()
}
pub fn age_entries(_dir: &Path, _by: Duration) {
    unimplemented!("mongo suite")
}
pub fn damage_entries(_dir: &Path, _truncate: bool) {
    unimplemented!("mongo suite")
}
pub fn count_entries(_dir: &Path) -> usize {
    unimplemented!("mongo suite")
}
