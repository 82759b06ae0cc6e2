//! Health probes: the I/O of one probe (an HTTP request, a TCP connect, a TLS handshake,
//! certificate files read from disk, or a declared command) and the judging of what it
//! observed against a check's conditions. Shared by the hub's prober and the fleet agent, so a
//! check probed from a node is probed and judged by the same code as one probed from the hub.

mod judge;
mod probe;
mod tls;

pub use judge::{Judgement, judge};
pub use probe::{Cause, Failure, Observation, Prober};

/// Where in its interval a check's first probe falls, in ms from the start: spread by name, so
/// that thousands of checks with the same interval do not all start in the same millisecond,
/// and the same wherever the check is probed (FNV-1a: stable across runs, instances and nodes).
pub fn phase_ms(name: &str, interval_ms: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % interval_ms.max(1)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn phases_spread_within_the_interval() {
        let phases: HashSet<u64> = (0..1_000)
            .map(|i| phase_ms(&format!("check-{i}"), 30_000))
            .collect();
        assert!(phases.iter().all(|p| *p < 30_000));
        assert!(phases.len() > 900, "{} distinct phases", phases.len());
        assert_eq!(phase_ms("x", 1_000), phase_ms("x", 1_000));
    }
}
