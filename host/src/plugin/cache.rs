//! The on-disk cache of compiled components.
//!
//! Owns: turning wasm bytes into a [`Component`], reusing native code compiled
//! earlier. Entries are keyed by the wasm's SHA-256 and the engine's
//! compatibility hash (wasmtime version, target, settings), so a restart or a
//! second agent on the same machine does not recompile, and a wasmtime
//! upgrade never loads stale code. Writes are atomic (temp file + rename).
//! It must not decide which plugins to load.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded precompiled code.
    Hit,
    /// Compiled, and stored for next time when the cache is enabled.
    Miss,
}

/// The compile cache; `None` directory disables it.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// A cache in `dir`, or a disabled one.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The cache directory, if enabled.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn entry_path(&self, engine: &Engine, sha256: &str) -> Option<PathBuf> {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = hasher.finish();
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{sha256}-{compat:016x}.cwasm")))
    }

    /// Returns the compiled component for `wasm` (whose hash is `sha256`).
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let entry = self.entry_path(engine, sha256);
        if let Some(entry) = &entry
            && entry.is_file()
        {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (it is in the file
            // name) into a directory the operator controls. Deserializing
            // bytes from anywhere else would be unsound, which is why only
            // this cache's own entries are read.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize_file(engine, entry) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(error) => tracing::warn!(
                    path = %entry.display(),
                    error = %error,
                    "Compiled-plugin cache entry is unusable; recompiling."
                ),
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Some(entry) = &entry
            && let Err(error) = store_entry(&component, entry)
        {
            tracing::warn!(
                path = %entry.display(),
                error = %error,
                "Could not write the compiled-plugin cache; continuing without it."
            );
        }
        Ok((component, CacheOutcome::Miss))
    }
}

fn store_entry(component: &Component, entry: &Path) -> anyhow::Result<()> {
    let dir = entry
        .parent()
        .ok_or_else(|| anyhow::anyhow!("cache entry has no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, &bytes)?;
    temp.persist(entry)?;
    Ok(())
}
