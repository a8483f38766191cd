//! How the workspace's programs ask the C allocator to keep the memory they free.
//!
//! Every tensor operation of burn's CPU backend allocates its output, so a training step frees
//! and allocates the same large buffers again and again. glibc's defaults give blocks above a
//! (moving) threshold back to the kernel on every free, and trim the heap whenever 16–64 MB lie
//! free at its top: each new buffer then arrives as fresh pages, one page fault per 4 KiB. On
//! a ResNet-20 step that was a fifth of the time. Here every block comes from the heap (no
//! `mmap` per allocation: the tutorial CNN's 37 MB first Linear layer is above the largest
//! threshold glibc accepts, 32 MiB) and freed memory stays there for the next step; the
//! process keeps the footprint of its largest step, which it reaches every step anyway.

/// Keeps freed memory in the process for reuse (glibc; elsewhere, the allocator's defaults).
/// Call it first thing in `main`, before any thread starts.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        // SAFETY: mallopt only sets allocator parameters; main calls it before other threads.
        let set = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
        };
        debug_assert!(set, "glibc refused the allocator settings");
    }
}
