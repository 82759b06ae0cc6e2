//! Handing memory the process has freed back to the system.
//!
//! glibc keeps what a program frees in its arenas for reuse and returns pages to the system
//! only from the top of each heap. Parsing a config of thousands of checks peaks at tens of MB
//! of short-lived parser nodes, interleaved with the config that stays; without a trim those
//! pages stay resident for the life of the daemon.

/// Asks the allocator to return the free pages of every arena to the system; true when it gave
/// something back. Elsewhere than glibc it does nothing and answers false: other allocators
/// return memory themselves or have no such call. It briefly locks each arena in turn, so it
/// belongs after a burst (a config load), not on a hot path.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_freed_memory() -> bool {
    // SAFETY: `malloc_trim` takes no pointers and only rearranges glibc's own free lists, under
    // the locks every other allocator call takes.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Asks the allocator to return the free pages of every arena to the system; true when it gave
/// something back. Elsewhere than glibc it does nothing and answers false.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_memory_can_be_released() {
        let burst: Vec<Vec<u8>> = (0..10_000).map(|i| vec![(i % 251) as u8; 4_096]).collect();
        let keep: Vec<Vec<u8>> = burst.iter().step_by(1_000).cloned().collect();
        drop(burst);
        // Whether glibc had anything to give back depends on the heap; it must not fail.
        let _ = release_freed_memory();
        assert_eq!(keep.len(), 10);
    }
}
