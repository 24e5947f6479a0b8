//! Staging directories that belong to one process each, so that what a
//! killed agent left behind can be told from what a live one is writing,
//! and removed, even with several agents sharing one lake.
//!
//! Owns: claiming a directory under the staging root (held by an exclusive
//! lock on its `.owner` file for as long as the process lives: the kernel
//! lets go of it however the process ends), sweeping the directories whose
//! lock nobody holds, and the loose `stage-*` files of agents from before
//! per-process directories. It must not know what is staged, nor touch
//! staging objects in an object store.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The file whose lock says a staging directory's process is alive.
const OWNER_FILE: &str = ".owner";
/// A directory without its `.owner` yet is one being claimed, unless older.
const CLAIMING_GRACE: Duration = Duration::from_secs(60);
/// Loose staging files of an older agent are left while they may be live:
/// a transfer that has not written for this long has timed out.
const LOOSE_FILE_AGE: Duration = Duration::from_secs(3600);

/// This process's staging directory; it is removed when the last clone of
/// the lake that claimed it is dropped.
#[derive(Debug)]
pub struct StagingClaim {
    dir: PathBuf,
    _owner: File,
}

impl StagingClaim {
    /// Sweeps `root` of what dead agents left, then claims a directory of
    /// this process's under it.
    pub fn claim(root: &Path) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(root)?;
        let swept = sweep(root);
        if swept.files > 0 || swept.directories > 0 {
            tracing::info!(
                staging = %root.display(),
                directories = swept.directories,
                files = swept.files,
                bytes = swept.bytes,
                "Removed staging files that agents no longer running left behind."
            );
        }
        let dir = root.join(format!(
            "agent-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir(&dir)?;
        let mut owner = File::create(dir.join(OWNER_FILE))?;
        owner.lock()?;
        // For a person looking at the directory; the lock is what counts.
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        let _ = writeln!(owner, "pid {} {host}", std::process::id());
        Ok(Arc::new(Self { dir, _owner: owner }))
    }

    /// The directory staging files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for StagingClaim {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Staging directories of dead processes.
    pub directories: u64,
    /// Files in them, and loose ones.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes the staging directories under `root` whose owner is gone, and
/// loose staging files old enough to be nobody's. Errors skip an entry.
pub fn sweep(root: &Path) -> Swept {
    let mut swept = Swept::default();
    let Ok(entries) = std::fs::read_dir(root) else {
        return swept;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if owner_is_gone(&path) {
                let (files, bytes) = contents(&path);
                if std::fs::remove_dir_all(&path).is_ok() {
                    swept.directories += 1;
                    swept.files += files;
                    swept.bytes += bytes;
                }
            }
        } else if entry.file_name().to_string_lossy().starts_with("stage-")
            && age(&path).is_some_and(|age| age > LOOSE_FILE_AGE)
        {
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(&path).is_ok() {
                swept.files += 1;
                swept.bytes += bytes;
            }
        }
    }
    swept
}

/// Whether no live process holds the directory's owner lock.
fn owner_is_gone(dir: &Path) -> bool {
    let Ok(owner) = File::options().write(true).open(dir.join(OWNER_FILE)) else {
        // Being claimed right now, or left half-claimed long ago.
        return age(dir).is_some_and(|age| age > CLAIMING_GRACE);
    };
    match owner.try_lock() {
        Ok(()) => true,
        Err(TryLockError::WouldBlock) => false,
        Err(TryLockError::Error(_)) => false,
    }
}

fn age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    SystemTime::now().duration_since(modified).ok()
}

/// Files and bytes under `dir`, its owner file not counted.
fn contents(dir: &Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .flatten()
        .filter(|e| e.file_name() != OWNER_FILE)
        .filter_map(|e| e.metadata().ok())
        .fold((0, 0), |(files, bytes), m| (files + 1, bytes + m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_agents_directory_goes_and_a_live_ones_stays() {
        let root = tempfile::tempdir().unwrap();
        let live = StagingClaim::claim(root.path()).unwrap();
        std::fs::write(live.dir().join("stage-live"), b"being written").unwrap();
        // What a killed agent leaves: its directory, its unlocked owner file,
        // half-written staging files.
        let dead = root.path().join("agent-1-deadbeef");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(OWNER_FILE), b"pid 1").unwrap();
        std::fs::write(dead.join("stage-a"), [0u8; 1000]).unwrap();
        std::fs::write(dead.join("stage-b"), [0u8; 24]).unwrap();
        // A loose file of an older agent, written just now: maybe live.
        std::fs::write(root.path().join("stage-recent"), b"x").unwrap();

        let second = StagingClaim::claim(root.path()).unwrap();
        assert!(!dead.exists());
        assert!(live.dir().join("stage-live").exists());
        assert!(root.path().join("stage-recent").exists());
        assert_ne!(second.dir(), live.dir());
        assert_eq!(sweep(root.path()), Swept::default(), "both claims are held");

        let dir = live.dir().to_owned();
        drop(live);
        assert!(!dir.exists(), "a claim removes its directory when dropped");
    }

    #[test]
    fn a_sweep_counts_what_it_removed() {
        let root = tempfile::tempdir().unwrap();
        let dead = root.path().join("agent-2-0000beef");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(OWNER_FILE), b"").unwrap();
        std::fs::write(dead.join("stage-a"), [0u8; 100]).unwrap();
        assert_eq!(
            sweep(root.path()),
            Swept {
                directories: 1,
                files: 1,
                bytes: 100
            }
        );
    }
}
