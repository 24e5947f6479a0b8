//! Making a file durable while it is still being written, so that the
//! `fsync` at publish waits for little.
//!
//! Owns: a background `fdatasync` of a file every [`STEP_BYTES`] written,
//! one at a time per file, on a short-lived thread of its own. The cost of an
//! `fsync` is not only writing the pages out: it also flushes the disk's
//! write cache, and on a virtual disk that flush takes as long as the bytes
//! written since the last one (1.3–1.8 ms per MB on one such machine: 118 ms
//! for a day's Parquet file and its archive). Writeback alone
//! (`sync_file_range`, what this module did before) leaves that flush to
//! the end; syncing as the file grows spreads it over the time the file is
//! being computed.
//!
//! It must not be what makes a file durable, and it reports no error:
//! publishing still calls `fsync`, on another open file description of the
//! same file, which sees any writeback error itself (Linux reports such an
//! error to every description open when it happened). A file that will
//! never be published with `fsync` (staged for an upload, say) should not be
//! synced at all: [`EarlySync::off`].

use std::fs::File;
use std::thread::JoinHandle;

/// How many newly written bytes make [`EarlySync::advance`] start a sync:
/// large enough that the syncs cost little, small enough that a day's
/// Parquet file is mostly durable when it is finished.
pub const STEP_BYTES: u64 = 8 << 20;

/// Tracks how much of a file a background sync has covered.
#[derive(Debug)]
pub struct EarlySync {
    enabled: bool,
    /// Bytes the latest sync was started for.
    started: u64,
    in_flight: Option<JoinHandle<()>>,
}

impl EarlySync {
    /// Syncs the file as it grows: for a file that will be published with `fsync`.
    pub fn on() -> Self {
        Self {
            enabled: true,
            started: 0,
            in_flight: None,
        }
    }

    /// Does nothing: for a file that is never made durable where it is.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::on()
        }
    }

    /// [`EarlySync::on`] for a file that will be published with `fsync`,
    /// else [`EarlySync::off`].
    pub fn when(published_with_fsync: bool) -> Self {
        if published_with_fsync {
            Self::on()
        } else {
            Self::off()
        }
    }

    /// The file has `written` bytes now; starts a sync once [`STEP_BYTES`]
    /// were written since the last one started and that one is done (a sync
    /// still running is not doubled; the next call catches up).
    pub fn advance(&mut self, file: &File, written: u64) {
        if written >= self.started + STEP_BYTES {
            self.start(file, written);
        }
    }

    /// The file is complete at `written` bytes: starts a sync of whatever is
    /// left, unless one is still running. For a file published a while
    /// later; one published at once gains nothing over its own `fsync`.
    pub fn finish(&mut self, file: &File, written: u64) {
        if written > self.started {
            self.start(file, written);
        }
    }

    fn start(&mut self, file: &File, written: u64) {
        if !self.enabled || self.in_flight.as_ref().is_some_and(|s| !s.is_finished()) {
            return;
        }
        // Failure to start only leaves more for the `fsync` at publish.
        let Ok(file) = file.try_clone() else {
            return;
        };
        let started = std::thread::Builder::new()
            .name("early-sync".to_owned())
            .spawn(move || {
                // Not reported: see the module docs.
                let _ = file.sync_data();
            });
        if let Ok(handle) = started {
            self.in_flight = Some(handle);
            self.started = written;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};

    use super::*;

    fn wait(sync: &mut EarlySync) {
        if let Some(handle) = sync.in_flight.take() {
            handle.join().expect("sync thread");
        }
    }

    #[test]
    fn a_sync_starts_every_step_and_leaves_the_contents_alone() {
        let mut file = tempfile::tempfile().expect("temp file");
        let mut sync = EarlySync::on();
        let mut started_at = Vec::new();
        for written in 1..=20u64 {
            file.write_all(&vec![written as u8; 1 << 20])
                .expect("write");
            sync.advance(&file, written << 20);
            if sync.in_flight.is_some() {
                started_at.push(sync.started >> 20);
                wait(&mut sync);
            }
        }
        // Started at 8 and 16 MiB; the last 4 MiB wait for the next step,
        // or for the end of the file.
        assert_eq!(started_at, [8, 16]);
        sync.finish(&file, 20 << 20);
        assert_eq!(sync.started, 20 << 20);
        wait(&mut sync);
        file.sync_all().expect("fsync");
        let mut contents = Vec::new();
        file.rewind().expect("rewind");
        file.read_to_end(&mut contents).expect("read back");
        assert_eq!(contents.len(), 20 << 20);
        for (index, block) in contents.chunks(1 << 20).enumerate() {
            assert!(
                block.iter().all(|b| usize::from(*b) == index + 1),
                "block {index}"
            );
        }
    }

    #[test]
    fn a_running_sync_is_not_doubled() {
        let file = tempfile::tempfile().expect("temp file");
        let mut sync = EarlySync::on();
        // A sync that never finishes stands in for a slow disk.
        let (hold, held) = std::sync::mpsc::channel::<()>();
        sync.in_flight = Some(std::thread::spawn(move || {
            let _ = held.recv();
        }));
        sync.advance(&file, STEP_BYTES);
        sync.finish(&file, STEP_BYTES + 1);
        assert_eq!(sync.started, 0, "nothing new starts while one runs");
        drop(hold);
        wait(&mut sync);
        sync.advance(&file, STEP_BYTES);
        assert_eq!(sync.started, STEP_BYTES, "the next call catches up");
        wait(&mut sync);
    }

    #[test]
    fn off_never_syncs() {
        let file = tempfile::tempfile().expect("temp file");
        let mut sync = EarlySync::off();
        sync.advance(&file, 4 * STEP_BYTES);
        sync.finish(&file, 4 * STEP_BYTES + 1);
        assert!(sync.in_flight.is_none());
        assert_eq!(sync.started, 0);
    }
}
