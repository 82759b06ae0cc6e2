//! A check's latency over the last hour as an SVG line chart, drawn by the server from its
//! probe results: passed probes on the line, failed ones as marks along the bottom.

use serde::Serialize;
use steward_wire::health::ProbeResult;

/// The drawing's size, in pixels.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 140.0;
/// Room on the left for the latency labels, and at the bottom for the failure marks.
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 16.0;

/// A chart ready for the template.
#[derive(Debug, Serialize)]
pub(crate) struct Chart {
    width: f64,
    height: f64,
    /// The plot area's left edge and bottom.
    left: f64,
    base: f64,
    /// The line through passed probes (an SVG path; empty without any).
    line: String,
    /// Failed probes' x positions.
    failures: Vec<f64>,
    /// The latency at the top of the plot, in milliseconds.
    top_ms: u64,
    /// Probes drawn.
    probes: usize,
    /// A one-line description for screen readers.
    summary: String,
}

/// Draws `results` (any order) between `from_ms` and `to_ms`.
pub(crate) fn latency_chart(results: &[ProbeResult], from_ms: i64, to_ms: i64) -> Chart {
    let mut shown: Vec<&ProbeResult> = results
        .iter()
        .filter(|r| (from_ms..=to_ms).contains(&r.at_ms))
        .collect();
    shown.sort_by_key(|r| r.at_ms);
    let slowest = shown
        .iter()
        .filter(|r| answered(r))
        .map(|r| r.latency_ms)
        .max()
        .unwrap_or(0);
    let top_ms = nice_ceiling(slowest);
    let span = (to_ms - from_ms).max(1) as f64;
    let base = HEIGHT - BOTTOM;
    let x = |at: i64| round(LEFT + (at - from_ms) as f64 / span * (WIDTH - LEFT));
    let y = |ms: u64| round(base - ms as f64 / top_ms as f64 * (base - 4.0));
    let line = shown
        .iter()
        .filter(|r| answered(r))
        .enumerate()
        .map(|(i, r)| {
            let command = if i == 0 { 'M' } else { 'L' };
            format!("{command}{} {}", x(r.at_ms), y(r.latency_ms))
        })
        .collect::<Vec<_>>()
        .join(" ");
    let failures: Vec<f64> = shown
        .iter()
        .filter(|r| !answered(r))
        .map(|r| x(r.at_ms))
        .collect();
    let summary = format!(
        "{} probes in the last hour, {} failed; slowest passing probe {} ms",
        shown.len(),
        failures.len(),
        slowest
    );
    Chart {
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        base,
        line,
        failures,
        top_ms,
        probes: shown.len(),
        summary,
    }
}

/// Whether a probe got an answer whose latency means something: anything but a failure.
fn answered(result: &ProbeResult) -> bool {
    result.verdict != "fail"
}

/// The smallest of 1, 2 and 5 times a power of ten at or above `ms` (at least 10 ms).
fn nice_ceiling(ms: u64) -> u64 {
    let mut scale = 1;
    loop {
        for step in [1, 2, 5] {
            let ceiling = step * scale;
            if ceiling >= ms.max(10) {
                return ceiling;
            }
        }
        scale *= 10;
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(at_ms: i64, latency_ms: u64, verdict: &str) -> ProbeResult {
        serde_json::from_value(serde_json::json!({
            "at": "", "at_ms": at_ms, "verdict": verdict, "latency_ms": latency_ms,
            "status": null, "cause": null, "error": null, "conditions": [], "certificates": []
        }))
        .unwrap()
    }

    #[test]
    fn passed_probes_make_the_line_and_failures_the_marks() {
        let results = [
            result(3_000, 80, "pass"),
            result(1_000, 20, "pass"),
            result(2_000, 0, "fail"),
            result(99_000, 5, "pass"),
        ];
        let chart = latency_chart(&results, 0, 10_000);
        assert_eq!(chart.probes, 3, "the one outside the window is left out");
        assert_eq!(chart.top_ms, 100);
        assert_eq!(chart.failures.len(), 1);
        assert!(chart.line.starts_with('M') && chart.line.matches('L').count() == 1);
        // Oldest first, left to right.
        let xs: Vec<f64> = chart
            .line
            .split(['M', 'L'])
            .filter(|s| !s.trim().is_empty())
            .map(|p| p.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
        assert!(chart.summary.contains("3 probes"));
    }

    #[test]
    fn an_empty_window_draws_nothing() {
        let chart = latency_chart(&[], 0, 1);
        assert_eq!((chart.probes, chart.line.as_str()), (0, ""));
        assert_eq!(chart.top_ms, 10);
    }

    #[test]
    fn ceilings_are_round_numbers() {
        for (ms, ceiling) in [
            (0, 10),
            (10, 10),
            (11, 20),
            (180, 200),
            (201, 500),
            (999, 1000),
            (1001, 2000),
        ] {
            assert_eq!(nice_ceiling(ms), ceiling, "{ms}");
        }
    }
}
