//! The process allocator's policy: keep freed memory while work is under
//! way, give it back when the agent goes idle.
//!
//! Owns: glibc's `mallopt` thresholds and `malloc_trim` (no-ops elsewhere).
//! It must not allocate or track memory itself.

/// Keeps freed memory in the process for reuse instead of handing it back
/// to the kernel at once. Every batch allocates and frees megabytes of
/// column buffers on three threads; with glibc's defaults those come from
/// fresh mappings or trimmed heaps, and a curate run spent about a tenth of
/// its CPU in page faults getting them back. Peak RSS is the same (what is
/// kept is what the next batch takes again). Call once, before any other
/// thread starts.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // The largest threshold glibc accepts for mmap (32 MiB on 64-bit).
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 64 << 20;
        // SAFETY: `mallopt` only sets allocator parameters; the caller runs
        // it before other threads exist.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

/// Returns the freed memory [`keep_freed_memory`] kept to the kernel, so an
/// agent idle between scheduled runs holds only what it uses.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` is thread-safe; it only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}
