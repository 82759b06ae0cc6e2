use super::*;
use crate::load::parse_str;

use crate::test_support::{assert_error, env, errors, parse};

#[test]
fn queue_defaults_come_from_the_domain() {
    let config = parse("[[queues]]\nname = \"q\"\nkinds = [\"noop\"]\n");
    let q = &config.queues[0];
    assert_eq!(q.concurrency, QueueSpec::DEFAULT_CONCURRENCY);
    assert_eq!(q.rate_limit, None);
    assert_eq!(q.retry, RetryPolicy::default());
    assert_eq!(q.timeout_ms, 60_000);
    assert_eq!(q.lease_ms, 30_000);
    assert_eq!(q.max_payload_bytes, 1 << 20);
    assert_eq!(q.retention_ms, Some(7 * 24 * 3600 * 1000));
    assert!(config.executors.is_empty());
}

#[test]
fn queue_errors_name_the_field_and_line() {
    let q = "[[queues]]\nname = \"q\"\nkinds = [\"noop\"]\n";
    let with = |line: &str| format!("{q}{line}\n");
    // Exact position, once.
    assert!(
        errors(&with("concurrency = 0")).contains(
            "f.toml:4:15: error: `queues[0].concurrency`: 0 is out of range (1 to 10000)"
        )
    );
    assert_error(
        &with("concurrency = 10001"),
        4,
        "`queues[0].concurrency`: 10001 is out of range",
    );
    assert_error(
        &with("concurrency = \"2\""),
        4,
        "`queues[0].concurrency`: expected an integer",
    );
    assert_error(
        &with("rate_limit = 0"),
        4,
        "`queues[0].rate_limit`: 0 is out of range (1 to 1000000)",
    );
    assert_error(
        &with("max_attempts = 1001"),
        4,
        "`queues[0].max_attempts`: 1001 is out of range (1 to 1000)",
    );
    assert_error(
        &with("max_payload_bytes = 67108865"),
        4,
        "`queues[0].max_payload_bytes`: 67108865 is out of range (1 to 67108864)",
    );
    assert_error(
        &with("timeout = \"soon\""),
        4,
        "`queues[0].timeout`: `soon` is not a duration",
    );
    assert_error(&with("timeout = \"30\""), 4, r#"e.g. "500ms", "30s""#);
    assert_error(
        &with("timeout = 30"),
        4,
        "`queues[0].timeout`: expected a duration as a string",
    );
    assert_error(
        &with("timeout = \"0s\""),
        4,
        "`queues[0].timeout`: must be more than zero",
    );
    assert_error(
        &with("timeout = \"10us\""),
        4,
        "`queues[0].timeout`: `10us` is less than 1ms",
    );
    assert_error(
        &with("timeout = \"20years\""),
        4,
        "`queues[0].timeout`: `20years` is too long",
    );
    assert_error(
        &with("lease = \"500ms\""),
        4,
        "`queues[0].lease`: must be at least 1s",
    );
    assert_error(
        &with("backoff_base = \"1x\""),
        4,
        "`queues[0].backoff_base`: `1x` is not a duration",
    );
    assert_error(
        &with("backoff_base = \"10s\"\nbackoff_cap = \"5s\""),
        5,
        "`queues[0].backoff_cap`: 5s is less than `backoff_base` (10s)",
    );
    assert_error(
        &with("backoff_base = \"10m\""),
        4,
        "`queues[0].backoff_base`: 10m is more than `backoff_cap` (5m, the default)",
    );
    assert_error(
        &with("retention = \"never\""),
        4,
        r#"`queues[0].retention`: `never` is not a duration"#,
    );
    assert_error(&with("retention = \"never\""), 4, r#"or "forever""#);
    assert_error(
        &with("concurency = 3"),
        4,
        "unknown key `queues[0].concurency`: did you mean `concurrency`?",
    );
}

#[test]
fn queue_names_and_kinds_are_checked() {
    assert_error(
        "[[queues]]\nkinds = [\"noop\"]\n",
        1,
        "`queues[0].name`: missing required field",
    );
    assert_error(
        "[[queues]]\nname = \"a b\"\nkinds = [\"noop\"]\n",
        2,
        "`queues[0].name`: `a b` is not a valid name",
    );
    assert_error(
        "[[queues]]\nname = \"q\"\n",
        1,
        "`queues[0].kinds`: missing required field",
    );
    assert_error(
        "[[queues]]\nname = \"q\"\nkinds = []\n",
        3,
        "`queues[0].kinds`: must list at least one kind",
    );
    assert_error(
        "[[queues]]\nname = \"q\"\nkinds = \"noop\"\n",
        3,
        "`queues[0].kinds`: expected an array of strings",
    );
    assert_error(
        "[[queues]]\nname = \"q\"\nkinds = [\"noop\", \"sleeep\"]\n",
        3,
        "`queues[0].kinds[1]`: unknown kind `sleeep` (neither built in nor declared in `[[executors]]`); did you mean `sleep`?",
    );
    assert_error(
        "[[executors]]\nname = \"backup\"\ntype = \"shell\"\ncommand = \"true\"\n[[queues]]\nname = \"q\"\nkinds = [\"bakup\"]\n",
        7,
        "did you mean `backup`?",
    );
    assert_error(
        "[[queues]]\nname = \"q\"\nkinds = [\"noop\"]\n[[queues]]\nname = \"q\"\nkinds = [\"noop\"]\n",
        5,
        "`queues[1].name`: duplicate queue `q` (first declared at f.toml:2:8)",
    );
    assert_error(
        "[[queue]]\nname = \"q\"\n",
        1,
        "unknown key `queue`: did you mean `queues`?",
    );
    // An executor with problems still counts as declared: one error, not two.
    let all = errors(
        "[[executors]]\nname = \"x\"\ntype = \"shell\"\ncommand = \"a b\"\n[[queues]]\nname = \"q\"\nkinds = [\"x\"]\n",
    );
    assert_eq!(all.lines().count(), 1, "{all}");
}

#[test]
fn a_kind_listed_twice_is_a_warning() {
    let loaded = parse_str(
        "f.toml",
        "[[queues]]\nname = \"q\"\nkinds = [\"noop\", \"noop\"]\n",
        &env,
    )
    .unwrap();
    assert_eq!(loaded.config.queues[0].kinds, ["noop"]);
    assert!(
        loaded.warnings[0]
            .to_string()
            .contains("`queues[0].kinds[1]`: kind `noop` is listed twice")
    );
}

#[test]
fn a_pinned_queue_takes_the_agents_kinds_and_schedules_follow_it() {
    let text = r#"
[[nodes]]
id = "vps-02"
hostname = "vps-02.internal"

[[queues]]
name = "remote"
node = "vps-02"
kinds = ["backup", "rotate-logs"]

[[schedules]]
name = "nightly"
every = "1h"
queue = "remote"
kind = "backup"
"#;
    let config = parse(text);
    let queue = &config.queues[0];
    assert_eq!(queue.node.as_deref(), Some("vps-02"));
    assert_eq!(queue.kinds, ["backup", "rotate-logs"], "not hub executors");
    assert_eq!(
        config.schedules[0].task.node.as_deref(),
        Some("vps-02"),
        "a schedule on a pinned queue fires onto its node"
    );

    let elsewhere = format!("{text}node = \"vps-03\"\n");
    assert!(
        errors(&elsewhere).contains(
            "`schedules[0].node`: queue `remote` is pinned to node `vps-02`; its tasks cannot run on `vps-03`"
        ),
        "{}",
        errors(&elsewhere)
    );
    let bad_id = text.replace("node = \"vps-02\"\nkinds", "node = \"-x\"\nkinds");
    assert!(errors(&bad_id).contains("`queues[0].node`: a node id is letters"));
    let bad_kind = text.replace("\"rotate-logs\"", "\"rotate logs\"");
    assert!(
        errors(&bad_kind).contains("`queues[0].kinds[1]`: `rotate logs` is not a valid kind name")
    );
    let unpinned = "[[queues]]\nname = \"q\"\nkinds = [\"backup\"]\n";
    assert!(
        errors(unpinned).contains("unknown kind `backup`"),
        "an unpinned queue's kinds are still the hub's executors"
    );
}
