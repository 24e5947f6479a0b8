//! File watching for hot reload: the configuration file and every plugin
//! `.wasm` the configuration names.
//!
//! Owns: the notify watcher and mapping its events to the files we care
//! about. Directories are watched, not files, because operators replace a
//! plugin by writing a new file and renaming it over the old one, which a
//! watch on the old inode would miss. A file reached through symlinks in a
//! watched directory also changes when one of those links is replaced: that
//! is how Kubernetes updates a mounted ConfigMap (`config.toml ->
//! ..data/config.toml`, and a new `..data` renamed over the old one, so no
//! event names `config.toml`). Debouncing is the daemon's job.

use std::collections::{BTreeMap, BTreeSet};
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
        // Each watched path, and the wanted files a change to it changes.
        let mut filter: BTreeMap<PathBuf, Vec<PathBuf>> = wanted
            .iter()
            .map(|file| (file.clone(), vec![file.clone()]))
            .collect();
        for file in &wanted {
            for link in links_resolved_through(file, &dirs) {
                filter.entry(link).or_default().push(file.clone());
            }
        }
        let links = filter.len() - wanted.len();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else {
                    return;
                };
                if event.kind.is_access() {
                    return;
                }
                for path in event.paths {
                    for file in filter.get(&normalise(&path)).into_iter().flatten() {
                        let _ = changes.send(file.clone());
                    }
                }
            })?;
        for dir in &dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        tracing::debug!(
            files = wanted.len(),
            links,
            directories = dirs.len(),
            "Watching files for changes."
        );
        Ok(Self { _watcher: watcher })
    }
}

/// Symlinks in the directories `dirs` that resolving `file` goes through,
/// normalised, `file` itself excepted: replacing any of them changes what
/// `file` reads. Links elsewhere (a `/var/run -> /run` above the
/// directory) are followed but not returned, since their directories are
/// not watched.
fn links_resolved_through(file: &Path, dirs: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    /// Links followed before giving up on a loop, as the kernel's `ELOOP`.
    const MAX_LINKS: usize = 40;
    let mut links = Vec::new();
    let mut path = file.to_owned();
    let mut followed = 0;
    'resolve: while followed < MAX_LINKS {
        let mut prefix = PathBuf::new();
        for component in path.components() {
            prefix.push(component);
            let Ok(target) = std::fs::read_link(&prefix) else {
                continue;
            };
            followed += 1;
            let link = normalise(&prefix);
            if link != file && link.parent().is_some_and(|dir| dirs.contains(dir)) {
                links.push(link);
            }
            let rest = path.strip_prefix(&prefix).unwrap_or(Path::new(""));
            let base = prefix.parent().unwrap_or(Path::new("/"));
            path = base.join(target).join(rest);
            continue 'resolve;
        }
        break;
    }
    links.dedup();
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout the kubelet gives a mounted ConfigMap, at version `n`.
    fn configmap_version(dir: &Path, n: u32, text: &str) {
        let version = format!("..2026_12_04_{n:02}");
        std::fs::create_dir(dir.join(&version)).expect("version dir");
        std::fs::write(dir.join(&version).join("config.toml"), text).expect("config");
        let staged = dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &staged).expect("..data_tmp");
        std::fs::rename(&staged, dir.join("..data")).expect("..data swapped");
    }

    #[test]
    fn a_configmap_file_depends_on_its_data_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        configmap_version(dir.path(), 1, "a");
        std::os::unix::fs::symlink("..data/config.toml", dir.path().join("config.toml"))
            .expect("config.toml link");
        let file = normalise(&dir.path().join("config.toml"));
        let dirs = BTreeSet::from([file.parent().expect("parent").to_owned()]);
        assert_eq!(
            links_resolved_through(&file, &dirs),
            [normalise(&dir.path().join("..data"))]
        );
        // A plain file and a link loop depend on nothing else.
        std::fs::write(dir.path().join("plain.toml"), "b").expect("plain");
        assert!(
            links_resolved_through(&normalise(&dir.path().join("plain.toml")), &dirs).is_empty()
        );
        std::os::unix::fs::symlink("loop", dir.path().join("loop")).expect("loop");
        assert_eq!(
            links_resolved_through(&normalise(&dir.path().join("loop")), &dirs),
            Vec::<PathBuf>::new()
        );
    }

    #[tokio::test]
    async fn replacing_the_data_link_reports_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        configmap_version(dir.path(), 1, "a");
        let config = dir.path().join("config.toml");
        std::os::unix::fs::symlink("..data/config.toml", &config).expect("config.toml link");
        let (changes, mut changed) = tokio::sync::mpsc::unbounded_channel();
        let _watcher = FileWatcher::start(std::slice::from_ref(&config), changes).expect("watch");
        configmap_version(dir.path(), 2, "b");
        let reported = tokio::time::timeout(std::time::Duration::from_secs(10), changed.recv())
            .await
            .expect("a change within 10 s");
        assert_eq!(reported, Some(normalise(&config)));
        assert_eq!(std::fs::read_to_string(&config).expect("read"), "b");
    }
}
