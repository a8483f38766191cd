//! Compiled GPU kernels kept between processes.
//!
//! cubecl generates each kernel's source at its first launch and compiles it with NVRTC: a
//! fraction of a second each, some seconds for the kernels of one network, in every process.
//! Its PTX cache skips both for a kernel compiled before, but is off unless configured; this
//! turns it on in a directory of the user's (the CUDA driver then keeps the machine code it
//! builds from the PTX in its own cache, `~/.nv/ComputeCache`).

use std::path::{Path, PathBuf};

use cubecl::config::cache::CacheConfig;
use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

/// Where compiled kernels are kept: `$GRADCAM_CACHE_DIR`, else `$XDG_CACHE_HOME/gradcam`,
/// else `~/.cache/gradcam`; `None` when none of them is set.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("GRADCAM_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("gradcam")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("gradcam")))
}

/// What the cache ended up as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelCache {
    /// Kernels are kept in this directory.
    In(PathBuf),
    /// A `cubecl.toml` (or `burn.toml`) of the user's already says where, or that nowhere.
    UserConfigured,
    /// cubecl's settings were read before this was called: nothing could change.
    TooLate,
}

/// Keeps compiled kernels in `dir` (created if needed), unless the user's own cubecl settings
/// name a cache. Call it before the first GPU operation of the process.
pub fn keep_compiled_kernels(dir: &Path) -> Result<KernelCache, std::io::Error> {
    if CubeClRuntimeConfig::storage().lock().is_some() {
        return Ok(KernelCache::TooLate);
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    if config.compilation.cache.is_some() {
        CubeClRuntimeConfig::set(config);
        return Ok(KernelCache::UserConfigured);
    }
    std::fs::create_dir_all(dir)?;
    config.compilation.cache = Some(CacheConfig::File(dir.to_path_buf()));
    CubeClRuntimeConfig::set(config);
    Ok(KernelCache::In(dir.to_path_buf()))
}
