//! Pacing: a backup that yields to the source's writers.
//!
//! Takes the source's `-shm`; gives a [`Pacer`] that, after each piece of
//! work, waits while writers commit.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Spreads a backup's work out while the source's writers commit, so that
/// their commits, each synced, keep most of the machine and the disk: after
/// each piece of work the backup waits [`Pacer::YIELD`] times as long as
/// the piece took, for as long as the WAL index (`-shm`) showed a commit
/// within the last [`Pacer::QUIET`]. With no writer it runs at full speed.
pub(super) struct Pacer {
    /// The source's `-shm` (from [`Source`]), when the backup yields.
    pub(super) shm: Option<Arc<File>>,
    /// The WAL index's change counter when last read.
    pub(super) change: Option<[u8; 4]>,
    /// When it was last seen to change.
    pub(super) changed: Option<Instant>,
}

impl Pacer {
    /// Waits per unit of work while writers are active: the copy runs a
    /// tenth of the time.
    pub(super) const YIELD: u32 = 9;
    /// How long after the last commit seen writers count as active.
    pub(super) const QUIET: Duration = Duration::from_millis(250);

    /// Yields to the writers of the WAL database whose `-shm` is open as
    /// `shm` (`None`: never yields).
    pub(super) fn new(shm: Option<Arc<File>>) -> Pacer {
        Pacer {
            shm,
            change: None,
            changed: None,
        }
    }

    /// Whether a writer committed lately. The change counter (bytes 8..12
    /// of the WAL-index header) moves with every commit and WAL restart.
    pub(super) fn writers_active(&mut self) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(f) = self.shm.as_deref() else {
            return false;
        };
        let mut b = [0u8; 12];
        if f.read_exact_at(&mut b, 0).is_ok() {
            let now = [b[8], b[9], b[10], b[11]];
            if self.change.is_some_and(|c| c != now) {
                self.changed = Some(Instant::now());
            }
            self.change = Some(now);
        }
        self.changed.is_some_and(|t| t.elapsed() < Self::QUIET)
    }

    /// Called after a piece of work that began at `start`.
    pub(super) fn pace(&mut self, start: Instant) {
        let worked = start.elapsed();
        if self.writers_active() {
            std::thread::sleep(worked.saturating_mul(Self::YIELD));
        }
    }
}
