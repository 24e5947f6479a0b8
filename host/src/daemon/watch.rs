//! File watching for hot reload: the configuration file and every plugin
//! `.wasm` the configuration names.
//!
//! Owns: the notify watcher and mapping its events to the files we care
//! about. Directories are watched, not files, because operators replace a
//! plugin by writing a new file and renaming it over the old one, which a
//! watch on the old inode would miss. Debouncing is the daemon's job.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

/// Watches a set of files; changed ones are sent on the channel.
pub struct FileWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// The absolute form of `path` used to match events: its directory
/// canonicalised (the file itself may be missing mid-replace).
pub fn normalise(path: &Path) -> PathBuf {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

impl FileWatcher {
    /// Starts watching `files`; every event touching one of them sends its
    /// normalised path on `changes`.
    pub fn start(files: &[PathBuf], changes: UnboundedSender<PathBuf>) -> notify::Result<Self> {
        let wanted: BTreeSet<PathBuf> = files.iter().map(|f| normalise(f)).collect();
        let dirs: BTreeSet<PathBuf> = wanted
            .iter()
            .filter_map(|f| f.parent().map(Path::to_owned))
            .collect();
        let filter = wanted.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else {
                    return;
                };
                if event.kind.is_access() {
                    return;
                }
                for path in event.paths {
                    let path = normalise(&path);
                    if filter.contains(&path) {
                        let _ = changes.send(path);
                    }
                }
            })?;
        for dir in &dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        tracing::debug!(
            files = wanted.len(),
            directories = dirs.len(),
            "Watching files for changes."
        );
        Ok(Self { _watcher: watcher })
    }
}
