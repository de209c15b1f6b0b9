//! glibc's allocator, tuned for training. By default glibc serves blocks over 128 KiB (a
//! batch of activations) with fresh `mmap`s and hands freed memory at the top of the heap back
//! to the system, so a training step maps, faults in and unmaps the same buffers over and
//! over: a plain candle loop at batch 512 runs about a quarter slower than with the
//! thresholds raised, and every short run pays glibc's warm-up of its dynamic threshold.
//! Flammable raises both thresholds once, before the task starts.
//!
//! A task binary built with `flammable`'s default feature `mimalloc` allocates through
//! mimalloc instead: these settings then touch only what C code allocates through glibc, and
//! are kept for binaries built without the feature.

/// Blocks up to this size come from the heap, not from `mmap` (glibc's largest allowed value
/// on 64-bit targets).
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory at the top of the heap kept for reuse rather than returned to the system.
pub const TRIM_THRESHOLD: usize = 256 << 20;

/// Whether the user already tunes glibc's allocator through the environment: then the
/// environment's settings stand.
pub fn user_tuned(env: impl Fn(&str) -> Option<String>) -> bool {
    env("GLIBC_TUNABLES").is_some_and(|t| t.contains("glibc.malloc."))
        || [
            "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_",
            "MALLOC_TOP_PAD_",
        ]
        .iter()
        .any(|v| env(v).is_some())
}

/// Raises glibc's mmap and trim thresholds to [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`],
/// unless the environment sets glibc's malloc tunables. Returns whether it changed them. Does
/// nothing on other C libraries.
pub fn tune_for_training() -> bool {
    if user_tuned(|v| std::env::var(v).ok()) {
        return false;
    }
    set_thresholds()
}

/// For a server, whose memory comes and goes with its requests: blocks over 128 KiB (a
/// request's body) always come from `mmap` and go back to the system when freed, and free
/// memory at the top of the heap over 128 KiB is returned, unless the environment sets
/// glibc's malloc tunables. glibc's defaults are the same sizes, but raise both thresholds
/// after the first large block freed, and then keep the memory of the largest burst; fixing
/// them turns that off. Returns whether it changed them.
pub fn tune_for_serving() -> bool {
    if user_tuned(|v| std::env::var(v).ok()) {
        return false;
    }
    set_serving_thresholds()
}

/// Returns the free memory of every arena to the system (glibc's `malloc_trim`); a server
/// calls it after a burst of requests. Does nothing on other C libraries.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases memory the allocator holds free; glibc documents it
    // as safe to call at any time from any thread (it takes each arena's lock).
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_serving_thresholds() -> bool {
    const SERVING: libc::c_int = 128 << 10;
    // SAFETY: as in `set_thresholds`; 128 KiB is glibc's own default for both.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, SERVING) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, SERVING) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_serving_thresholds() -> bool {
    false
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_thresholds() -> bool {
    // SAFETY: `mallopt` only sets allocator parameters; glibc documents it as safe to call at
    // any time (it takes the arena lock), and the values are within its documented ranges
    // (the mmap threshold at most HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_own_settings_stand() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!user_tuned(env(&[])));
        assert!(!user_tuned(env(&[(
            "GLIBC_TUNABLES",
            "glibc.pthread.rseq=0"
        )])));
        assert!(user_tuned(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.mmap_threshold=131072"
        )])));
        assert!(user_tuned(env(&[("MALLOC_TRIM_THRESHOLD_", "0")])));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_thresholds() {
        assert!(set_thresholds());
    }
}
