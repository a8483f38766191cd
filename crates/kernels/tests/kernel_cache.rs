//! The GPU kernel cache is turned on before cubecl reads its settings, in the folder asked
//! for, and says so when it comes too late. cubecl's settings are the process's: this file is
//! its own test binary, and its one test runs the steps in order.
//!
//! `cargo test -p kernels --features wgpu --test kernel_cache`

#![cfg(feature = "wgpu")]

use cubecl::config::cache::CacheConfig;
use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
use kernels::cube::cache::{KernelCache, keep_compiled_kernels};

#[test]
fn the_cache_goes_where_asked_and_only_before_cubecl_starts() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("kernels");
    assert_eq!(
        keep_compiled_kernels(&folder).unwrap(),
        KernelCache::In(folder.clone())
    );
    assert!(folder.is_dir(), "the folder is created");
    match &CubeClRuntimeConfig::get().compilation.cache {
        Some(CacheConfig::File(path)) => assert_eq!(path, &folder),
        other => panic!("cubecl's cache setting is {other:?}"),
    }
    // Settings are read once per process: a second call cannot change them.
    let elsewhere = dir.path().join("elsewhere");
    assert_eq!(
        keep_compiled_kernels(&elsewhere).unwrap(),
        KernelCache::TooLate
    );
    assert!(!elsewhere.exists());
}
