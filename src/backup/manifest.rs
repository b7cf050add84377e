//! The manifest beside every backup: reading it (bounded, never from a
//! FIFO, names that stay inside the backup) and writing it.
//!
//! Takes a backup's path; gives its manifest's path and contents.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{FileEntry, Manifest};
use crate::error::{Error, Result};
use crate::io::{open_regular, sibling};

/// The manifest path of a backup at `dest`.
pub fn manifest_path(dest: &Path) -> PathBuf {
    if dest.is_dir() {
        dest.join("manifest.json")
    } else {
        sibling(dest, ".manifest.json")
    }
}

pub(super) fn manifest_path_for_file(dest: &Path) -> PathBuf {
    sibling(dest, ".manifest.json")
}

pub(super) fn write_json(path: &Path, m: &Manifest) -> Result<()> {
    let text = serde_json::to_string_pretty(m)
        .map_err(|e| Error::output(path, std::io::Error::other(e)))?;
    let mut f = File::create(path).map_err(|e| Error::output(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .map_err(|e| Error::output(path, e))
}

/// Largest manifest read: a real one is well under a kilobyte.
pub(super) const MAX_MANIFEST: u64 = 1 << 20;

/// Reads and parses a manifest (at most [`MAX_MANIFEST`] bytes, from a
/// regular file); the reason it cannot be used otherwise.
pub(super) fn read_manifest(path: &Path) -> std::result::Result<Manifest, String> {
    let why = |e: &dyn std::fmt::Display| format!("manifest {}: {e}", path.display());
    let f = open_regular(path).map_err(|e| why(&e))?;
    let mut text = String::new();
    f.take(MAX_MANIFEST + 1)
        .read_to_string(&mut text)
        .map_err(|e| why(&e))?;
    if text.len() as u64 > MAX_MANIFEST {
        return Err(why(&format!("over {MAX_MANIFEST} bytes, not a manifest")));
    }
    serde_json::from_str(&text).map_err(|e| why(&format!("unreadable: {e}")))
}

/// A manifest lists what a backup writes: the database under a plain file
/// name (no directory part, so nothing outside the backup is read), then
/// at most its `-wal`.
pub(super) fn check_file_names(files: &[FileEntry]) -> std::result::Result<(), String> {
    let Some((db, rest)) = files.split_first() else {
        return Err("the manifest lists no files".into());
    };
    let n = &db.name;
    if n.is_empty() || n == "." || n == ".." || n.contains(['/', '\0']) {
        return Err(format!("the manifest names {n:?}, not a file name"));
    }
    match rest {
        [] => Ok(()),
        [w] if w.name == format!("{n}-wal") => Ok(()),
        [w] => Err(format!(
            "the manifest lists {:?} beside {n:?}, not its -wal",
            w.name
        )),
        _ => Err(format!(
            "the manifest lists {} files; a backup has at most 2",
            files.len()
        )),
    }
}
