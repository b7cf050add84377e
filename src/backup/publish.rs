//! Publishing a finished backup: synced, then renamed into place, the
//! database before its manifest (a backup without its manifest does not
//! verify), an old file-set directory replaced whole.
//!
//! Takes the staged backup in its private directory; gives it at DEST.

use std::path::Path;

use super::manifest::{manifest_path_for_file, write_json};
use super::{Manifest, now};
use crate::cleanup::critical;
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
    critical(|| {
        let _ = std::fs::remove_file(&final_manifest);
        std::fs::rename(out, dest).map_err(|e| Error::output(dest, e))?;
        std::fs::rename(&mpath, &final_manifest).map_err(|e| Error::output(dest, e))
    })
}

/// Puts the file set staged in `staged` (with its manifest) in place as
/// the directory `dest`, replacing an old one (moved aside under a name
/// starting with the staging directory's `prefix`, then removed).
pub(super) fn file_set(
    staged: tempfile::TempDir,
    prefix: &str,
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
    // Under the staging directory's own registration: removed on a stop.
    let old = parent_dir(dest).join(format!("{prefix}old-{}.tmp", now()));
    // The old set is out of the way and the new one in, or neither.
    let replaced = critical(|| {
        let replaced = dest.exists();
        if replaced {
            std::fs::rename(dest, &old).map_err(|e| Error::output(dest, e))?;
        }
        if let Err(e) = std::fs::rename(staged.path(), dest) {
            if replaced {
                let _ = std::fs::rename(&old, dest);
            }
            return Err(Error::output(dest, e));
        }
        Ok(replaced)
    })?;
    // The staged directory is the backup now.
    let _ = staged.keep();
    if replaced {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}
