//! Point-in-time restore: a fresh single-file database equal to a snapshot.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::snapshot::Snapshot;

/// What a replay wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ReplayStats {
    /// The commit written (0 for the database file alone).
    pub commit: u32,
    /// Pages written.
    pub pages: u32,
    /// Of those, pages taken from the WAL.
    pub wal_pages: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Refuses an output path that is one of `inputs` (or their -wal, -shm,
/// -journal), by path or by file identity (hard links, symlinks), or an
/// existing directory; and an existing file unless `force`.
pub fn check_output(out: &Path, inputs: &[&Path], force: bool) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let out_meta = std::fs::metadata(out).ok();
    if out_meta.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(Error::output(
            out,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "output is a directory"),
        ));
    }
    let canon_out = canonical_parent(out);
    for input in inputs {
        let mut related: Vec<PathBuf> = vec![input.to_path_buf()];
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut s = input.as_os_str().to_owned();
            s.push(suffix);
            related.push(PathBuf::from(s));
        }
        for r in related {
            if canon_out.is_some() && canonical_parent(&r) == canon_out {
                return Err(Error::OutputIsInput(out.to_path_buf()));
            }
            if let (Some(om), Ok(im)) = (&out_meta, std::fs::metadata(&r)) {
                if om.dev() == im.dev() && om.ino() == im.ino() {
                    return Err(Error::OutputIsInput(out.to_path_buf()));
                }
            }
        }
    }
    if out_meta.is_some() && !force {
        return Err(Error::OutputExists(out.to_path_buf()));
    }
    Ok(())
}

/// The path with its directory canonicalized (the file itself may not exist).
fn canonical_parent(p: &Path) -> Option<PathBuf> {
    let name = p.file_name()?;
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Some(std::fs::canonicalize(dir).ok()?.join(name))
}

/// Writes `make(file)` into a temporary file beside `out`, syncs it (when
/// `sync`), renames it over `out` and syncs the directory. On error the
/// temporary file is removed and `out` is untouched.
pub fn write_atomically<T>(
    out: &Path,
    sync: bool,
    make: impl FnOnce(&mut File) -> Result<T>,
) -> Result<T> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        // An ordinary file once renamed (the umask still applies).
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(&dir)
        .map_err(|e| Error::output(&dir, e))?;
    let value = make(tmp.as_file_mut()).map_err(|e| match e {
        Error::Output { source, .. } => Error::output(out, source),
        e => e,
    })?;
    if sync {
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::output(out, e))?;
    }
    tmp.persist(out).map_err(|e| Error::output(out, e.error))?;
    if sync {
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(value)
}

/// Writes `snap` to `out` as a fresh single-file database (see
/// [`Snapshot::write_image`]), durably: the file and its directory are
/// synced before this returns.
pub fn replay(snap: &Snapshot, out: &Path) -> Result<ReplayStats> {
    replay_with(snap, out, true)
}

/// Like [`replay`]; `sync` false skips the fsync calls (faster, but a
/// crash soon after may lose the output).
pub fn replay_with(snap: &Snapshot, out: &Path, sync: bool) -> Result<ReplayStats> {
    let bytes = write_atomically(out, sync, |f| snap.write_image(f))?;
    Ok(ReplayStats {
        commit: snap.commit(),
        pages: snap.page_count(),
        wal_pages: snap.wal_pages(),
        bytes,
    })
}
