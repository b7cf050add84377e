//! Temporary outputs removed when the process is stopped.
//!
//! Takes the temporary files and directories a command writes before it
//! renames its result into place ([`Pending`], registered before they are
//! made); gives [`on_signals`], which on SIGINT, SIGTERM or SIGHUP removes
//! every one of them and exits with 128 + the signal's number (130, 143,
//! 129), and [`critical`], under which a rename that publishes a result is
//! never cut in two by that exit. [`remove_pending`] does the removal for
//! a program with its own signal handling.
//!
//! Every temporary name is `.<output name>.salvage-<pid>-...`: what a process that could not clean up
//! (SIGKILL, power loss) leaves behind is recognisable, never taken for a
//! result (a result only ever appears by rename), and removed by the next
//! command that writes the same output ([`remove_stale`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// What to remove on a stop: (registration id, directory, name prefix).
type List = Vec<(u64, PathBuf, String)>;

static PENDING: Mutex<List> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn pending() -> MutexGuard<'static, List> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Temporary names removed on a stop while this value lives: everything
/// in a directory whose name starts with a prefix of this process's own,
/// registered before anything by that name is made (so a stop between
/// making a file and noting it leaves nothing), with the side files SQLite
/// makes beside a database (`-journal`, `-wal`) and what a directory holds.
#[derive(Debug)]
pub struct Pending {
    id: u64,
    prefix: String,
}

impl Pending {
    /// Registers a fresh prefix for temporary names for `out`, in `dir`.
    pub fn for_output(dir: &Path, out: &Path) -> Pending {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{}{}-{id}-", temp_prefix(out), std::process::id());
        pending().push((id, dir.to_path_buf(), prefix.clone()));
        Pending { id, prefix }
    }

    /// The prefix every temporary name made under this registration takes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        pending().retain(|(id, _, _)| *id != self.id);
    }
}

/// Runs `f` with the removal held off: a stop that comes meanwhile waits
/// for `f` to finish (use it for the renames that publish a result, so
/// that the result is either not there or whole).
pub fn critical<T>(f: impl FnOnce() -> T) -> T {
    let _held = pending();
    f()
}

/// Removes every pending temporary path now (for a program that handles
/// signals itself); returns how many existed.
pub fn remove_pending() -> usize {
    remove_locked(&mut pending())
}

fn remove_locked(list: &mut List) -> usize {
    let mut n = 0;
    for (_, dir, prefix) in list.drain(..) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                n += usize::from(remove(&e.path()));
            }
        }
    }
    n
}

/// Removes a file, or a directory with what is in it: renamed first, so
/// that a file still being made in it by its old name fails instead of
/// keeping it.
fn remove(p: &Path) -> bool {
    if !p.is_dir() {
        return std::fs::remove_file(p).is_ok();
    }
    let mut gone = p.as_os_str().to_owned();
    gone.push(".removing");
    let gone = PathBuf::from(gone);
    let p = if std::fs::rename(p, &gone).is_ok() {
        gone.as_path()
    } else {
        p
    };
    (0..10).any(|_| std::fs::remove_dir_all(p).is_ok())
}

/// On SIGINT, SIGTERM or SIGHUP: removes every pending temporary path and
/// exits with 128 + the signal's number. Call once, at start.
pub fn on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("cleanup".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // Held until exit: nothing is published after the removal.
                let mut list = pending();
                remove_locked(&mut list);
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

/// The prefix of every temporary name made for `out`: `.<name>.salvage-`.
pub fn temp_prefix(out: &Path) -> String {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    format!(".{name}.salvage-")
}

/// Removes what a stopped process left for `out` in `dir`: names with
/// [`temp_prefix`], then a process id no process has any longer, not
/// written for a minute (on a system without `/proc`, nothing is
/// removed); returns those removed.
pub fn remove_stale(dir: &Path, out: &Path) -> Vec<PathBuf> {
    let prefix = temp_prefix(out);
    let mut removed = Vec::new();
    let (Ok(entries), true) = (std::fs::read_dir(dir), Path::new("/proc/self").exists()) else {
        return removed;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        // A process in another pid namespace (a container sharing the
        // directory) has no /proc entry here: a minute without a write too.
        let idle = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|d| d.as_secs() >= 60);
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() || !idle {
            continue;
        }
        let p = e.path();
        if remove(&p) {
            removed.push(p);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn make(dir: &Path, name: &str, age_secs: u64) -> PathBuf {
        let p = dir.join(name);
        let f = std::fs::File::create(&p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
            .unwrap();
        p
    }

    #[test]
    fn only_an_idle_leftover_of_a_dead_process_for_that_output_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let out = d.join("out.db");
        // No process has a pid above the kernel's maximum (4194304).
        let dead = make(d, ".out.db.salvage-99999999-1-abc.tmp", 600);
        let young = make(d, ".out.db.salvage-99999998-1-abc.tmp", 0);
        let mine = make(
            d,
            &format!(".out.db.salvage-{}-1-abc.tmp", std::process::id()),
            600,
        );
        let other = make(d, ".other.db.salvage-99999999-1-abc.tmp", 600);
        let plain = make(d, "out.db.salvage-99999999-1-abc.tmp", 600);
        let removed = remove_stale(d, &out);
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists());
        for p in [young, mine, other, plain] {
            assert!(p.exists(), "{} removed", p.display());
        }
    }

    #[test]
    fn a_registration_removes_what_was_made_under_its_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let p = Pending::for_output(d, &d.join("x.db"));
        let file = d.join(format!("{}a.tmp", p.prefix()));
        let side = d.join(format!("{}a.tmp-journal", p.prefix()));
        let sub = d.join(format!("{}b.tmp", p.prefix()));
        std::fs::write(&file, b"1").unwrap();
        std::fs::write(&side, b"1").unwrap();
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("inner"), b"1").unwrap();
        let keep = d.join("x.db");
        std::fs::write(&keep, b"1").unwrap();
        // Only this registration's list: others' files are not touched.
        let mut list = vec![(p.id, d.to_path_buf(), p.prefix().to_string())];
        assert_eq!(remove_locked(&mut list), 3);
        assert!(!file.exists() && !side.exists() && !sub.exists());
        assert!(keep.exists());
    }
}
