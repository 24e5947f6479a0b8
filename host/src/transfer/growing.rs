//! A spool file that can be read while its download is still writing it.
//!
//! Owns: announcing how many bytes of the file are written (the download
//! side) and a blocking reader that follows the file as it grows, then sees
//! the end when the download ends, however it ends (the decode side). This
//! lets decompression and decoding start with the first bytes instead of
//! after the last one, without holding the archive in memory and without
//! slowing the download: the file, not a queue, is the buffer. It must not
//! judge the bytes: checksum verification stays with the download.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How far a download has written its spool file.
#[derive(Debug, Default)]
pub struct Growth {
    state: Mutex<State>,
    changed: Condvar,
    /// Nanoseconds readers spent waiting for bytes.
    waited: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    written: u64,
    ended: bool,
}

impl Growth {
    /// A file with nothing written yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The first `written` bytes are in the file (readable by another handle).
    pub fn written(&self, written: u64) {
        self.update(|state| state.written = state.written.max(written));
    }

    /// No more bytes will come: the download finished, failed or was dropped.
    pub fn end(&self) {
        self.update(|state| state.ended = true);
    }

    /// Waits until the download has ended.
    pub fn wait_for_end(&self) {
        self.wait_until(|state| state.ended);
    }

    /// How long readers have waited for the download so far: time that
    /// belongs to the network, not to whoever is reading.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited.load(Ordering::Relaxed))
    }

    /// A reader over the file at `path`, from its start.
    pub fn reader(self: &Arc<Self>, path: &Path) -> io::Result<GrowingReader> {
        Ok(GrowingReader {
            file: File::open(path)?,
            growth: Arc::clone(self),
            position: 0,
        })
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut state);
        self.changed.notify_all();
    }

    /// The state once `ready`, and how long that took (zero, without a
    /// clock read, when it already was).
    fn wait_until(&self, ready: impl Fn(&State) -> bool) -> (State, Duration) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if ready(&state) {
            return (*state, Duration::ZERO);
        }
        let started = Instant::now();
        let state = self
            .changed
            .wait_while(state, |state| !ready(state))
            .unwrap_or_else(PoisonError::into_inner);
        (*state, started.elapsed())
    }
}

/// Ends the growth when dropped, so that a reader never waits for a
/// download that returned early with an error or was cancelled.
pub struct EndOnDrop(pub Arc<Growth>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Reads a growing file: blocks while the reader has caught up with the
/// download, returns end of file once the download has ended and every
/// written byte was read.
pub struct GrowingReader {
    file: File,
    growth: Arc<Growth>,
    position: u64,
}

impl Read for GrowingReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if buffer.is_empty() {
            return Ok(0);
        }
        let position = self.position;
        let (state, waited) = self
            .growth
            .wait_until(|state| state.written > position || state.ended);
        if !waited.is_zero() {
            let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
            self.growth.waited.fetch_add(nanos, Ordering::Relaxed);
        }
        let available = state.written.saturating_sub(position);
        if available == 0 {
            return Ok(0);
        }
        let wanted = buffer
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        let read = self.file.read(&mut buffer[..wanted])?;
        self.position += read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn the_reader_follows_the_writer_and_stops_at_the_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("spool");
        let mut file = File::create(&path).expect("create");
        let growth = Growth::new();
        let mut reader = growth.reader(&path).expect("reader");
        let consumer = std::thread::spawn(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).map(|_| all)
        });
        let mut expected = Vec::new();
        for round in 0..50u8 {
            let chunk = vec![round; 1000 + usize::from(round)];
            file.write_all(&chunk).expect("write");
            expected.extend_from_slice(&chunk);
            growth.written(expected.len() as u64);
            if round % 10 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        drop(EndOnDrop(Arc::clone(&growth)));
        let read = consumer.join().expect("reader thread").expect("read");
        assert_eq!(read, expected);
    }

    #[test]
    fn an_ended_download_ends_the_reader_even_with_nothing_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("spool");
        File::create(&path).expect("create");
        let growth = Growth::new();
        let mut reader = growth.reader(&path).expect("reader");
        let consumer = std::thread::spawn(move || reader.read(&mut [0u8; 16]));
        growth.end();
        assert_eq!(consumer.join().expect("thread").expect("read"), 0);
        growth.wait_for_end();
    }
}
