//! The allocator settings keep a freed large block for the next allocation of its size: the
//! second allocation touches no new page.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_freed_large_block_is_reused_without_page_faults() {
    kernels::allocator::keep_freed_memory();
    let minor_faults = || {
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) },
            0
        );
        usage.ru_minflt
    };
    let touch = |len: usize| {
        let mut block = vec![0u8; 0];
        block.resize(len, 1); // written, so every page is mapped
        std::hint::black_box(&block);
    };
    let len = 16 << 20; // 4,096 pages, above glibc's default thresholds
    touch(len);
    let before = minor_faults();
    touch(len);
    let faults = minor_faults() - before;
    assert!(
        faults < 64,
        "{faults} page faults re-allocating a freed 16 MiB block"
    );
}
