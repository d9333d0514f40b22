//! Free space on the data directory's file system, and the reserve kept there.
//!
//! A node refuses new writes while less than `storage.min_free_mb` is free (the leader refuses
//! to propose, so every node answers `storage-full`), and its Raft log waits before writing
//! while less than half of that is free. So neither the log nor redb meets `ENOSPC` in normal
//! operation: a write that failed half-way on a full disk would poison the database until a
//! restart, where a refused or delayed one recovers by itself once space is freed.

use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// The data directory's file system and the reserve kept free on it.
#[derive(Clone, Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    min_free: u64,
}

/// Why a write was refused: too little space left.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the disk holding {dir} is nearly full: {free_mib} MiB free, {reserve_mib} MiB kept in reserve \
     (storage.min_free_mb); writes resume by themselves once space is freed there"
)]
pub struct DiskFull {
    pub dir: String,
    pub free_mib: u64,
    pub reserve_mib: u64,
}

impl DiskSpace {
    /// `min_free_mb` of 0 keeps no reserve (never refuses).
    pub fn new(dir: &Path, min_free_mb: u64) -> Self {
        Self { dir: dir.to_owned(), min_free: min_free_mb.saturating_mul(MIB) }
    }

    /// Bytes an unprivileged writer may still use there; `None` if the system cannot say.
    pub fn free(&self) -> Option<u64> {
        rustix::fs::statvfs(&self.dir).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize))
    }

    pub fn reserve(&self) -> u64 {
        self.min_free
    }

    /// `Err` when less than the reserve is free: refuse new writes.
    pub fn check(&self) -> Result<(), DiskFull> {
        self.judge(self.free())
    }

    /// [`Self::check`] of a reading already taken (`None`: unknown, never refused).
    fn judge(&self, free: Option<u64>) -> Result<(), DiskFull> {
        match free {
            Some(free) if free < self.min_free => Err(DiskFull {
                dir: self.dir.display().to_string(),
                free_mib: free / MIB,
                reserve_mib: self.min_free / MIB,
            }),
            _ => Ok(()),
        }
    }

    /// Whether the Raft log may write now without waiting ([`Self::wait_for_room`] would
    /// return at once). Unknown free space counts as room.
    pub fn log_has_room(&self) -> bool {
        self.free().is_none_or(|free| free >= self.log_floor())
    }

    /// The free space below which the Raft log waits: half the reserve.
    fn log_floor(&self) -> u64 {
        self.min_free / 2
    }

    /// Wait until more than half the reserve is free (at once when it is). Entries already
    /// accepted by the cluster still reach this node's log, but never into the last half of
    /// the reserve; meanwhile this node's Raft waits and the others go on without it.
    pub fn wait_for_room(&self) {
        let mut warned = false;
        while let Some(free) = self.free().filter(|&free| free < self.log_floor()) {
            if !warned {
                tracing::error!(
                    dir = %self.dir.display(),
                    free_mib = free / MIB,
                    "the disk is full: the Raft log waits for space before writing"
                );
                metrics::gauge!("pizza_orders_storage_log_waiting").set(1.0);
                warned = true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if warned {
            tracing::info!(dir = %self.dir.display(), "space freed: the Raft log writes again");
            metrics::gauge!("pizza_orders_storage_log_waiting").set(0.0);
        }
    }

    /// Publish the free space and whether writes are refused (every few seconds), from one
    /// reading, and return that verdict ([`Self::check`]).
    pub fn publish(&self) -> Result<(), DiskFull> {
        let free = self.free();
        let verdict = self.judge(free);
        if let Some(free) = free {
            metrics::gauge!("pizza_orders_storage_free_bytes").set(free as f64);
        }
        metrics::gauge!("pizza_orders_storage_reserve_bytes").set(self.min_free as f64);
        metrics::gauge!("pizza_orders_storage_full").set(if verdict.is_err() { 1.0 } else { 0.0 });
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_any_disk_refuses_and_none_never_does() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(DiskSpace::new(dir.path(), 0).check().is_ok());
        let err = DiskSpace::new(dir.path(), u64::MAX / MIB).check().expect_err("no disk is that large");
        assert!(err.to_string().contains("storage.min_free_mb"), "{err}");
        // Waiting with no reserve returns at once.
        DiskSpace::new(dir.path(), 0).wait_for_room();
        // A directory that does not exist cannot be measured, so nothing is refused.
        assert!(DiskSpace::new(&dir.path().join("missing"), 64).check().is_ok());
    }
}
