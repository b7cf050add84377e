//! Files: read-only opening of inputs, positioned reads, and atomic output.
//!
//! Takes paths; gives open descriptors and whole outputs. An input is
//! opened read-only, never created, locked or written, and refused unless
//! it is a regular file (a FIFO would make the open wait forever). An output
//! is written under a temporary name beside its final path, synced, and
//! renamed into place, so a reader never sees half of one.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::cleanup::Pending;
use crate::error::{Error, Result};

/// `path` with `suffix` appended to its last component: `db` -> `db-wal`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens `path` read-only if it is a regular file; directories, FIFOs,
/// sockets and devices are refused (`InvalidInput`).
///
/// The open itself does not wait: opening a FIFO for reading would block
/// until a writer appears, so it is opened non-blocking and then refused.
/// (The flag changes nothing for regular files.)
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// [`open_regular`], with the file's size.
pub fn open_input(path: &Path) -> Result<(File, u64)> {
    let file = open_regular(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    Ok((file, size))
}

/// Reads `buf.len()` bytes at `offset`, zero-filling past the end of file
/// (as SQLite does for short reads).
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                return Ok(());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
        let related = std::iter::once(input.to_path_buf())
            .chain(["-wal", "-shm", "-journal"].map(|s| sibling(input, s)));
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
    Some(std::fs::canonicalize(parent_dir(p)).ok()?.join(name))
}

/// A temporary output beside its final path, removed when dropped or
/// when the process is stopped ([`crate::cleanup`]), until
/// [`TempOut::publish`] renames it into place.
#[derive(Debug)]
pub struct TempOut {
    file: tempfile::NamedTempFile,
    _pending: Pending,
}

impl TempOut {
    /// A new, empty, hidden file `.<name>.salvage-<pid>-<n>-XXXXXX.tmp` beside
    /// `out`, with an ordinary file's permissions once renamed (the umask
    /// still applies). Leftovers of stopped processes for `out` go first.
    pub fn beside(out: &Path) -> Result<TempOut> {
        let dir = parent_dir(out);
        crate::cleanup::remove_stale(&dir, out);
        let pending = Pending::for_output(&dir, out);
        let file = tempfile::Builder::new()
            .prefix(pending.prefix())
            .suffix(".tmp")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(&dir)
            .map_err(|e| Error::output(&dir, e))?;
        Ok(TempOut {
            file,
            _pending: pending,
        })
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The open temporary file.
    pub fn file_mut(&mut self) -> &mut File {
        self.file.as_file_mut()
    }

    /// Renames the finished file over `out`, syncing it first and its
    /// directory after when `sync`. `before` runs just before the rename
    /// and `undo` gets its value back if the rename fails; a stop waits
    /// for all of it, so that `out` is either the old file or the new one.
    pub fn publish_with<R>(
        self,
        out: &Path,
        sync: bool,
        before: impl FnOnce() -> Result<R>,
        undo: impl FnOnce(R),
    ) -> Result<R> {
        if sync {
            self.file
                .as_file()
                .sync_all()
                .map_err(|e| Error::output(out, e))?;
        }
        let TempOut { file, _pending } = self;
        let r = crate::cleanup::critical(|| {
            let r = before()?;
            match file.into_temp_path().persist(out) {
                Ok(()) => Ok(r),
                Err(e) => {
                    undo(r);
                    Err(Error::output(out, e.error))
                }
            }
        })?;
        if sync {
            sync_dir(&parent_dir(out));
        }
        Ok(r)
    }

    /// Renames the finished file over `out` ([`TempOut::publish_with`]).
    pub fn publish(self, out: &Path, sync: bool) -> Result<()> {
        self.publish_with(out, sync, || Ok(()), |()| {})
    }
}

/// Syncs the file or directory at `path`.
pub fn sync_path(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::output(path, e))
}

/// Syncs the directory `dir` so that a rename in it is durable; a
/// directory that cannot be opened is passed over (the rename happened).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `make(file)` into a temporary file beside `out`, syncs it (when
/// `sync`), renames it over `out` and syncs the directory. On error the
/// temporary file is removed and `out` is untouched.
pub fn write_atomically<T>(
    out: &Path,
    sync: bool,
    make: impl FnOnce(&mut File) -> Result<T>,
) -> Result<T> {
    let mut tmp = TempOut::beside(out)?;
    let value = make(tmp.file_mut()).map_err(|e| match e {
        Error::Output { source, .. } => Error::output(out, source),
        e => e,
    })?;
    tmp.publish(out, sync)?;
    Ok(value)
}
