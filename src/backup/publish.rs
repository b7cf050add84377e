//! Publishing a finished backup: synced, then renamed into place, the
//! database before its manifest (a backup without its manifest does not
//! verify), an old file-set directory replaced whole.
//!
//! Takes the staged backup in its private directory; gives it at DEST.

use std::path::Path;

use super::manifest::{manifest_path_for_file, write_json};
use super::{Manifest, now};
use crate::error::{Error, Result};
use crate::io::{parent_dir, sync_path};

/// Puts the compact backup `out` (staged in `work`) and its manifest in
/// place at `dest`.
pub(super) fn compact(
    out: &Path,
    work: &Path,
    dest: &Path,
    m: &Manifest,
    sync: bool,
) -> Result<()> {
    let mpath = work.join("manifest.json");
    write_json(&mpath, m)?;
    if sync {
        sync_path(out)?;
        sync_path(&mpath)?;
    }
    let final_manifest = manifest_path_for_file(dest);
    let _ = std::fs::remove_file(&final_manifest);
    std::fs::rename(out, dest).map_err(|e| Error::output(dest, e))?;
    std::fs::rename(&mpath, &final_manifest).map_err(|e| Error::output(dest, e))?;
    Ok(())
}

/// Puts the file set staged in `staged` (with its manifest) in place as
/// the directory `dest`, replacing an old one.
pub(super) fn file_set(
    staged: tempfile::TempDir,
    dest: &Path,
    m: &Manifest,
    sync: bool,
) -> Result<()> {
    let mpath = staged.path().join("manifest.json");
    write_json(&mpath, m)?;
    if sync {
        let dir = staged.path();
        for f in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let f = f.map_err(|e| Error::io(dir, e))?;
            sync_path(&f.path())?;
        }
        sync_path(dir)?;
    }
    let staged = staged.keep();
    if dest.exists() {
        let old = parent_dir(dest).join(format!(".salvage-old-{}-{}", now(), std::process::id()));
        std::fs::rename(dest, &old).map_err(|e| Error::output(dest, e))?;
        std::fs::rename(&staged, dest).map_err(|e| Error::output(dest, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staged, dest).map_err(|e| Error::output(dest, e))?;
    }
    Ok(())
}
