//! Per-user files whose contents a key or a trust decision relies on (the
//! hash cache, the table of verified seals): taken into account only when
//! this user owns the file and its directory and nobody else can write
//! either, as ssh treats its own files. A shared `XDG_CACHE_HOME` must not
//! let another user plant a hash or a verdict.
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Whether `file` (opened from `path`) and its directory are this user's
/// own and closed to others' writes (the file to others' reads too).
pub fn ours(file: &File, path: &Path) -> bool {
    let me = rustix::process::geteuid().as_raw();
    let owned = |meta: Metadata, closed: u32| meta.uid() == me && meta.mode() & closed == 0;
    file.metadata().is_ok_and(|m| owned(m, 0o077))
        && path
            .parent()
            .and_then(|dir| std::fs::metadata(dir).ok())
            .is_some_and(|m| owned(m, 0o022))
}

/// The whole of the file at `path`, when it is [`ours`].
pub fn read(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    read_into(path, &mut bytes).then_some(bytes)
}

/// [`read`] into `bytes` (cleared first, left empty when the file is not
/// read): a caller reading many reuses one buffer.
pub fn read_into(path: &Path, bytes: &mut Vec<u8>) -> bool {
    use std::io::Read;
    bytes.clear();
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    if !ours(&file, path) || file.read_to_end(bytes).is_err() {
        bytes.clear();
        return false;
    }
    true
}
