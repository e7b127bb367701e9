//! `--input` components: files, directories walked in sorted order, and globs.
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Component;
use crate::error::Exit;

/// Add a component per file under `spec`: its path and its content hash.
/// A path or glob that names nothing is a usage error: the command must not run.
pub fn components(spec: &OsStr, parts: &mut Vec<Component>) -> Result<()> {
    let text = spec.to_string_lossy();
    let roots: Vec<PathBuf> = if text.contains(['*', '?', '[']) {
        let paths = glob::glob(&text)
            .map_err(|e| Exit::usage(format!("--input `{text}` is not a valid glob: {e}")))?;
        let mut found: Vec<PathBuf> = paths.filter_map(|p| p.ok()).collect();
        found.sort();
        if found.is_empty() {
            return Err(missing(&text, "no path matches this glob"));
        }
        found
    } else {
        vec![PathBuf::from(spec)]
    };
    for root in roots {
        let meta = std::fs::metadata(&root)
            .map_err(|e| missing(&root.to_string_lossy(), &e.to_string()))?;
        if meta.is_dir() {
            for entry in walkdir::WalkDir::new(&root)
                .follow_links(true)
                .sort_by_file_name()
            {
                let entry = entry.map_err(|e| missing(&root.to_string_lossy(), &e.to_string()))?;
                if entry.file_type().is_file() {
                    parts.push(file_component(entry.path())?);
                }
            }
        } else {
            parts.push(file_component(&root)?);
        }
    }
    Ok(())
}

fn file_component(path: &Path) -> Result<Component> {
    let shown = path.to_string_lossy();
    let mut file = File::open(path).map_err(|e| missing(&shown, &e.to_string()))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(&mut file)
        .map_err(|e| missing(&shown, &e.to_string()))?;
    let content = *hasher.finalize().as_bytes();
    let label = format!("input {shown}");
    let path_bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    Ok(super::component(
        &label,
        &(path_bytes, content),
        format!("content {}", super::short_hash(&content)),
    ))
}

fn missing(path: &str, why: &str) -> anyhow::Error {
    Exit::usage(format!(
        "--input `{path}`: {why}; fix the path or drop the --input (the command did not run)"
    ))
}
