//! The `cryptolake` binary: see `cryptolake --help`.

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    cryptolake::cli::main()
}

/// Keeps freed memory in the process for reuse instead of handing it back
/// to the kernel at once. Every batch allocates and frees megabytes of
/// column buffers on three threads; with glibc's defaults those come from
/// fresh mappings or trimmed heaps, and a curate run spent about a tenth of
/// its CPU in page faults getting them back. Peak RSS is the same (what is
/// kept is what the next batch takes again).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // The largest threshold glibc accepts for mmap (32 MiB on 64-bit).
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;
    const TRIM_THRESHOLD: libc::c_int = 64 << 20;
    // SAFETY: `mallopt` only sets allocator parameters, and runs before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
