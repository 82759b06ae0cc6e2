//! Judging an observation: its conditions evaluated, and the verdict they add up to.

use steward_core::health::Condition;
use steward_core::health::condition::evaluate_all;
use steward_core::health::state::ProbeVerdict;

use crate::probe::Observation;
use steward_core::text::printable;

/// An observation judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Pass, slow pass or fail.
    pub verdict: ProbeVerdict,
    /// Each condition as resolved, with whether it held.
    pub conditions: Vec<(bool, String)>,
    /// Why it did not pass, in one line (empty when it passed).
    pub reason: String,
}

/// Judges `seen` against `conditions`:
/// - a probe that failed by itself (refused, timed out, …) fails, whatever the conditions;
/// - otherwise a failed condition that is not about latency fails it;
/// - otherwise a failed latency condition (`[RESPONSE_TIME] < 500`) makes it a slow pass;
/// - otherwise it passes.
pub fn judge(conditions: &[Condition], seen: &Observation) -> Judgement {
    let outcomes = evaluate_all(conditions, &seen.context);
    let mut hard = Vec::new();
    let mut slow = Vec::new();
    for (condition, outcome) in conditions.iter().zip(&outcomes) {
        if !outcome.success {
            if condition.is_latency() {
                slow.push(outcome.resolved.as_str());
            } else {
                hard.push(outcome.resolved.as_str());
            }
        }
    }
    let (verdict, reason) = if let Some(failure) = &seen.failure {
        (
            ProbeVerdict::Fail,
            format!("{}: {}", failure.cause.as_str(), failure.message),
        )
    } else if !hard.is_empty() {
        (ProbeVerdict::Fail, hard.join("; "))
    } else if !slow.is_empty() {
        (ProbeVerdict::SlowPass, slow.join("; "))
    } else {
        (ProbeVerdict::Pass, String::new())
    };
    Judgement {
        verdict,
        conditions: outcomes
            .into_iter()
            .map(|o| (o.success, printable(&o.resolved)))
            .collect(),
        reason: printable(&reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Cause, Failure};
    use steward_core::health::ProbeContext;

    fn seen(status: u16, ms: u64) -> Observation {
        Observation {
            started_ms: 0,
            latency_ms: ms,
            context: ProbeContext {
                status: Some(status),
                response_time_ms: Some(ms),
                connected: true,
                ..ProbeContext::default()
            },
            failure: None,
            cert_not_after_ms: None,
            certificates: Vec::new(),
        }
    }

    fn conditions(texts: &[&str]) -> Vec<Condition> {
        texts.iter().map(|t| Condition::parse(t).unwrap()).collect()
    }

    #[test]
    fn verdicts_follow_the_kind_of_condition_that_failed() {
        let cs = conditions(&["[STATUS] == 200", "[RESPONSE_TIME] < 100"]);
        assert_eq!(judge(&cs, &seen(200, 5)).verdict, ProbeVerdict::Pass);
        assert_eq!(judge(&cs, &seen(200, 500)).verdict, ProbeVerdict::SlowPass);
        let failed = judge(&cs, &seen(503, 500));
        assert_eq!(failed.verdict, ProbeVerdict::Fail);
        assert_eq!(failed.reason, "[STATUS] (503) == 200");
        assert_eq!(failed.conditions.len(), 2);
    }

    #[test]
    fn a_failed_probe_fails_even_without_conditions() {
        let mut refused = seen(200, 1);
        refused.failure = Some(Failure {
            cause: Cause::Refused,
            message: "connecting to 127.0.0.1:9: refused".into(),
        });
        let j = judge(&[], &refused);
        assert_eq!(j.verdict, ProbeVerdict::Fail);
        assert!(j.reason.starts_with("refused: "));
    }
}
