//! Early writeback of files being written, so that the `fsync` at publish
//! waits for little.
//!
//! Owns: asking the kernel to start writing a byte range of a file to disk
//! without waiting for it (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`,
//! as RocksDB's `bytes_per_sync` does; a no-op elsewhere). It must not make
//! anything durable: publishing still calls `fsync`, which is what makes a
//! file survive a crash.

use std::fs::File;

/// How many newly written bytes make [`Writeback::advance`] start their
/// writeback: large enough that the calls cost nothing, small enough that a
/// day's Parquet file is mostly on disk when it is finished.
pub const STEP_BYTES: u64 = 8 << 20;

/// Tracks how much of a file the kernel was asked to write out.
#[derive(Debug, Default)]
pub struct Writeback {
    started: u64,
}

impl Writeback {
    /// The file has `written` bytes now; starts writing back the bytes
    /// since the last call that did, once there are [`STEP_BYTES`] of them.
    pub fn advance(&mut self, file: &File, written: u64) {
        if written >= self.started + STEP_BYTES {
            self.start_up_to(file, written);
        }
    }

    /// The file is complete at `written` bytes: starts writing back
    /// whatever is left, however little, so the `fsync` at publish finds it
    /// already under way.
    pub fn finish(&mut self, file: &File, written: u64) {
        if written > self.started {
            self.start_up_to(file, written);
        }
    }

    fn start_up_to(&mut self, file: &File, written: u64) {
        start(file, self.started, written - self.started);
        self.started = written;
    }
}

/// Starts writing `len` bytes at `offset` of `file` to disk and returns at
/// once. Failure only means the final `fsync` has more to do, so it is
/// ignored.
fn start(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: the descriptor is open for as long as `file` is borrowed;
        // the call only schedules I/O on it and touches no memory of ours.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};

    use super::*;

    #[test]
    fn writeback_starts_every_step_and_leaves_the_contents_alone() {
        let mut file = tempfile::tempfile().expect("temp file");
        let mut writeback = Writeback::default();
        for written in 1..=20u64 {
            file.write_all(&vec![written as u8; 1 << 20])
                .expect("write");
            writeback.advance(&file, written << 20);
        }
        // Started at 8 and 16 MiB; the last 4 MiB wait for the next step,
        // or for the end of the file.
        assert_eq!(writeback.started, 16 << 20);
        writeback.finish(&file, 20 << 20);
        assert_eq!(writeback.started, 20 << 20);
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
}
