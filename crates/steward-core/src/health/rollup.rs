//! Per-minute roll-ups of probe results and latency percentiles over a window.
//!
//! Each probe result lands in the [`Rollup`] of its minute ([`minute_of`]): a count, a failure
//! count and a latency histogram with a fixed layout ([`BUCKET_BOUNDS_MS`]). Roll-ups are stored
//! (as JSON), so percentiles over any window — an hour, a day, thirty days — are computed by
//! merging the stored roll-ups of that window ([`percentiles`]), never from samples in memory.
//!
//! # Bucket layout
//!
//! Bucket `i < BUCKET_BOUNDS_MS.len()` holds latencies `l` with
//! `BUCKET_BOUNDS_MS[i - 1] < l <= BUCKET_BOUNDS_MS[i]` (bucket 0 holds `0 ..= 1` ms). The last
//! bucket, index `BUCKET_BOUNDS_MS.len()`, is open-ended: everything over 60 s. The bounds are
//! 1–2–3–4–5–6–8, then 10–13–16–20–25–32–40–50–65–80 in every decade up to 60 000: a growth of
//! 1.25× to 1.33× per bucket. A percentile read from the histogram is off by at most one bucket's
//! width, always upwards: at most +2 ms below 10 ms, and at most a third of the true value above
//! (the open-ended bucket excepted, see [`OVERFLOW_MS`]). The layout is part of the stored format: changing it
//! invalidates stored roll-ups.

use serde::{Deserialize, Serialize};

/// One minute, in milliseconds.
const MINUTE_MS: i64 = 60_000;

/// Upper bounds (inclusive, milliseconds) of the finite latency buckets. See the
/// [module docs](self) for the layout; a [`Rollup`] has one more bucket for everything above the
/// last bound.
pub const BUCKET_BOUNDS_MS: [u64; 46] = [
    1, 2, 3, 4, 5, 6, 8, //
    10, 13, 16, 20, 25, 32, 40, 50, 65, 80, //
    100, 130, 160, 200, 250, 320, 400, 500, 650, 800, //
    1_000, 1_300, 1_600, 2_000, 2_500, 3_200, 4_000, 5_000, 6_500, 8_000, //
    10_000, 13_000, 16_000, 20_000, 25_000, 32_000, 40_000, 50_000, 60_000,
];

/// Number of buckets in a [`Rollup`]: the finite ones plus the open-ended one.
pub const BUCKET_COUNT: usize = BUCKET_BOUNDS_MS.len() + 1;

/// The value reported for a quantile that falls in the open-ended bucket: just over the last
/// bound, i.e. "more than 60 s". It is a lower bound, unlike every other reported value.
pub const OVERFLOW_MS: u64 = 60_001;

/// The bucket a latency falls in: `0 .. BUCKET_COUNT`.
pub fn bucket_index(latency_ms: u64) -> usize {
    BUCKET_BOUNDS_MS.partition_point(|&bound| bound < latency_ms)
}

/// The value reported for bucket `index`: its upper bound, or [`OVERFLOW_MS`] for the
/// open-ended bucket (and any index past it).
pub fn bucket_value_ms(index: usize) -> u64 {
    BUCKET_BOUNDS_MS.get(index).copied().unwrap_or(OVERFLOW_MS)
}

/// The start of the minute holding `ms` (Unix milliseconds; rounds down, also before 1970).
pub fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// Probe results of one minute (or, after [`Rollup::merge`], of a window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    /// Start of the minute, Unix milliseconds (a multiple of 60 000).
    pub minute_ms: i64,
    /// Probe results recorded.
    pub count: u64,
    /// Of which failed.
    pub failures: u64,
    /// Latency histogram, [`BUCKET_COUNT`] counters in the layout of [`BUCKET_BOUNDS_MS`].
    pub buckets: Vec<u64>,
}

impl Rollup {
    /// An empty roll-up for the minute holding `minute_ms` (rounded down with [`minute_of`]).
    pub fn new(minute_ms: i64) -> Self {
        Self {
            minute_ms: minute_of(minute_ms),
            count: 0,
            failures: 0,
            buckets: vec![0; BUCKET_COUNT],
        }
    }

    /// Records one probe result. Failed probes' latencies count in the histogram too.
    pub fn record(&mut self, latency_ms: u64, success: bool) {
        self.count = self.count.saturating_add(1);
        if !success {
            self.failures = self.failures.saturating_add(1);
        }
        let index = bucket_index(latency_ms);
        if self.buckets.len() <= index {
            self.buckets.resize(BUCKET_COUNT.max(index + 1), 0);
        }
        if let Some(slot) = self.buckets.get_mut(index) {
            *slot = slot.saturating_add(1);
        }
    }

    /// Adds `other`'s counts into `self` (keeping `self.minute_ms`). Commutative and
    /// associative on the counts; a shorter histogram (e.g. from a damaged record) is padded.
    pub fn merge(&mut self, other: &Rollup) {
        self.count = self.count.saturating_add(other.count);
        self.failures = self.failures.saturating_add(other.failures);
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine = mine.saturating_add(*theirs);
        }
    }
}

/// Request counts and latency percentiles over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// Probe results in the window.
    pub count: u64,
    /// Of which failed.
    pub failures: u64,
    /// Median latency (a bucket bound, see [`quantile`]); `None` without samples.
    pub p50_ms: Option<u64>,
    /// 95th percentile latency.
    pub p95_ms: Option<u64>,
    /// 99th percentile latency.
    pub p99_ms: Option<u64>,
}

/// Merges `rollups` (any minutes, any order) and reads the counts and percentiles.
pub fn percentiles(rollups: &[Rollup]) -> Percentiles {
    let mut total = Rollup::new(0);
    for r in rollups {
        total.merge(r);
    }
    Percentiles {
        count: total.count,
        failures: total.failures,
        p50_ms: quantile(&total.buckets, 0.50),
        p95_ms: quantile(&total.buckets, 0.95),
        p99_ms: quantile(&total.buckets, 0.99),
    }
}

/// The 1-based nearest rank of quantile `q` among `total` samples: `ceil(q × total)`, at least 1.
fn rank(total: u64, q: f64) -> u64 {
    // Float to int `as` saturates; the clamp keeps the rank inside 1 ..= total.
    ((q * total as f64).ceil() as u64).clamp(1, total)
}

/// The `q`-quantile (`0.0 ..= 1.0`, clamped) of a histogram in the [`BUCKET_BOUNDS_MS`] layout,
/// by the nearest-rank method: the reported value is the upper bound of the bucket holding the
/// sample of rank `ceil(q × n)` ([`OVERFLOW_MS`] for the open-ended bucket).
///
/// Error bound: the true nearest-rank quantile lies in the same bucket, so it is at most the
/// reported value and more than the previous bound — within one bucket's width. `None` when the
/// histogram is empty or `q` is NaN.
pub fn quantile(buckets: &[u64], q: f64) -> Option<u64> {
    if q.is_nan() {
        return None;
    }
    let total = buckets.iter().fold(0u64, |acc, &n| acc.saturating_add(n));
    if total == 0 {
        return None;
    }
    let rank = rank(total, q.clamp(0.0, 1.0));
    let mut seen = 0u64;
    for (index, &n) in buckets.iter().enumerate() {
        seen = seen.saturating_add(n);
        if seen >= rank {
            return Some(bucket_value_ms(index));
        }
    }
    None
}

/// Failures over results across `rollups`; `None` when there were no results.
pub fn failure_ratio(rollups: &[Rollup]) -> Option<f64> {
    let (count, failures) = rollups.iter().fold((0u64, 0u64), |(c, f), r| {
        (c.saturating_add(r.count), f.saturating_add(r.failures))
    });
    (count > 0).then(|| failures as f64 / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rollup_of(minute: i64, samples: &[(u64, bool)]) -> Rollup {
        let mut r = Rollup::new(minute);
        for &(latency, ok) in samples {
            r.record(latency, ok);
        }
        r
    }

    #[test]
    fn layout_is_strictly_increasing_and_log_spaced() {
        assert_eq!(BUCKET_BOUNDS_MS[0], 1);
        assert_eq!(BUCKET_BOUNDS_MS[BUCKET_BOUNDS_MS.len() - 1], 60_000);
        for w in BUCKET_BOUNDS_MS.windows(2) {
            assert!(w[0] < w[1]);
            // Never more than +100 % (only at 1 → 2 ms), at most +34 % from 3 ms on.
            assert!(w[1] <= 2 * w[0]);
            if w[0] >= 3 {
                assert!(w[1] * 100 <= w[0] * 134, "{w:?}");
            }
        }
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(1), 0);
        assert_eq!(bucket_index(2), 1);
        assert_eq!(bucket_index(100), 17);
        assert_eq!(bucket_index(101), 18);
        assert_eq!(bucket_index(60_000), BUCKET_COUNT - 2);
        assert_eq!(bucket_index(60_001), BUCKET_COUNT - 1);
        assert_eq!(bucket_index(u64::MAX), BUCKET_COUNT - 1);
        assert_eq!(bucket_index(OVERFLOW_MS), BUCKET_COUNT - 1);
    }

    #[test]
    fn minute_of_rounds_down() {
        assert_eq!(minute_of(0), 0);
        assert_eq!(minute_of(59_999), 0);
        assert_eq!(minute_of(60_000), 60_000);
        assert_eq!(minute_of(-1), -60_000);
        assert_eq!(Rollup::new(125_000).minute_ms, 120_000);
    }

    #[test]
    fn constant_latency_reads_its_bucket() {
        let r = rollup_of(0, &[(100, true); 50]);
        let p = percentiles(&[r]);
        assert_eq!(p.count, 50);
        assert_eq!(p.failures, 0);
        assert_eq!(p.p50_ms, Some(100));
        assert_eq!(p.p99_ms, Some(100));

        let r = rollup_of(0, &[(90, true); 10]);
        let p = percentiles(&[r]);
        let got = p.p50_ms.unwrap();
        assert!((90..=100).contains(&got), "{got}");
        assert_eq!(p.p50_ms, p.p99_ms);
    }

    #[test]
    fn known_distribution() {
        // 90 fast (10 ms), 9 slow (500 ms), 1 very slow (5 s) and failed.
        let mut samples = vec![(10, true); 90];
        samples.extend([(500, true); 9]);
        samples.push((5_000, false));
        let a = rollup_of(0, &samples[..50]);
        let b = rollup_of(60_000, &samples[50..]);
        let p = percentiles(&[a.clone(), b.clone()]);
        assert_eq!(p.count, 100);
        assert_eq!(p.failures, 1);
        assert_eq!(p.p50_ms, Some(10));
        assert_eq!(p.p95_ms, Some(500));
        assert_eq!(p.p99_ms, Some(500));
        assert_eq!(quantile(&b.buckets, 1.0), Some(5_000));
        assert_eq!(failure_ratio(&[a, b]), Some(0.01));
    }

    #[test]
    fn empty_and_odd_inputs() {
        let p = percentiles(&[]);
        assert_eq!(
            (p.count, p.p50_ms, p.p95_ms, p.p99_ms),
            (0, None, None, None)
        );
        assert_eq!(failure_ratio(&[]), None);
        assert_eq!(failure_ratio(&[Rollup::new(0)]), None);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[1], f64::NAN), None);
        assert_eq!(quantile(&[0, 3], -1.0), Some(2));
        assert_eq!(quantile(&[0, 3], 7.0), Some(2));
        let over = rollup_of(0, &[(120_000, false)]);
        assert_eq!(percentiles(&[over]).p50_ms, Some(OVERFLOW_MS));
        // A damaged, short histogram still merges and records.
        let mut short = Rollup {
            minute_ms: 0,
            count: 1,
            failures: 0,
            buckets: vec![1],
        };
        short.record(70_000, true);
        assert_eq!(short.buckets.len(), BUCKET_COUNT);
        let mut fresh = Rollup::new(0);
        fresh.merge(&short);
        assert_eq!(fresh, short);
    }

    #[test]
    fn serde_round_trip() {
        let r = rollup_of(
            1_735_689_600_123,
            &[(3, true), (250, false), (99_999, true)],
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.starts_with("{\"minute_ms\":1735689600000,\"count\":3,\"failures\":1,"));
        let back: Rollup = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    fn samples() -> impl Strategy<Value = Vec<(u64, bool)>> {
        proptest::collection::vec(
            (
                prop_oneof![0u64..200, 0u64..5_000, 0u64..100_000, any::<u64>()],
                any::<bool>(),
            ),
            0..60,
        )
    }

    proptest! {
        #[test]
        fn merge_is_commutative_and_associative(a in samples(), b in samples(), c in samples()) {
            let (ra, rb, rc) = (rollup_of(0, &a), rollup_of(0, &b), rollup_of(0, &c));
            let mut ab = ra.clone();
            ab.merge(&rb);
            let mut ba = rb.clone();
            ba.merge(&ra);
            prop_assert_eq!(&ab, &ba);

            let mut ab_c = ab.clone();
            ab_c.merge(&rc);
            let mut bc = rb.clone();
            bc.merge(&rc);
            let mut a_bc = ra.clone();
            a_bc.merge(&bc);
            prop_assert_eq!(&ab_c, &a_bc);

            let all: Vec<_> = a.iter().chain(&b).chain(&c).copied().collect();
            prop_assert_eq!(ab_c, rollup_of(0, &all));
        }

        #[test]
        fn percentiles_are_monotonic(a in samples(), b in samples()) {
            let p = percentiles(&[rollup_of(0, &a), rollup_of(60_000, &b)]);
            prop_assert_eq!(p.count, (a.len() + b.len()) as u64);
            if p.count == 0 {
                prop_assert_eq!(p.p50_ms, None);
            } else {
                let (p50, p95, p99) = (p.p50_ms.unwrap(), p.p95_ms.unwrap(), p.p99_ms.unwrap());
                prop_assert!(p50 <= p95 && p95 <= p99, "{:?}", p);
            }
        }

        #[test]
        fn estimate_bucket_holds_exact_quantile(
            latencies in proptest::collection::vec(
                prop_oneof![0u64..200, 0u64..100_000, any::<u64>()], 1..200),
            q in 0.0f64..=1.0,
        ) {
            let mut r = Rollup::new(0);
            for &l in &latencies {
                r.record(l, true);
            }
            let mut sorted = latencies.clone();
            sorted.sort_unstable();
            let exact = sorted[(rank(sorted.len() as u64, q) - 1) as usize];
            let estimate = quantile(&r.buckets, q).unwrap();
            prop_assert_eq!(bucket_index(estimate), bucket_index(exact));
            if bucket_index(exact) < BUCKET_BOUNDS_MS.len() {
                prop_assert!(exact <= estimate);
            }
        }
    }
}
