use proptest::prelude::*;
use serde_json::json;

use super::*;

const HOUR: i64 = 3_600_000;

fn parse(text: &str) -> Condition {
    Condition::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn parse_err(text: &str) -> ConditionError {
    match Condition::parse(text) {
        Ok(c) => panic!("{text:?} should not parse, got {c:?}"),
        Err(e) => e,
    }
}

fn eval(text: &str, cx: &ProbeContext) -> Outcome {
    parse(text).evaluate(cx)
}

fn holds(text: &str, cx: &ProbeContext) -> bool {
    eval(text, cx).success
}

fn resolved(text: &str, cx: &ProbeContext) -> String {
    eval(text, cx).resolved
}

fn status(code: u16) -> ProbeContext {
    ProbeContext {
        status: Some(code),
        ..ProbeContext::default()
    }
}

fn body(text: &str) -> ProbeContext {
    ProbeContext {
        body: Some(text.to_owned()),
        ..ProbeContext::default()
    }
}

fn json_body(value: serde_json::Value) -> ProbeContext {
    body(&value.to_string())
}

// ---------------------------------------------------------------------------------------------
// Placeholders.

#[test]
fn status_placeholder() {
    assert!(holds("[STATUS] == 200", &status(200)));
    assert!(!holds("[STATUS] == 200", &status(503)));
    assert_eq!(
        resolved("[STATUS] == 200", &status(503)),
        "[STATUS] (503) == 200"
    );
    assert_eq!(
        resolved("[STATUS] == 200", &ProbeContext::default()),
        "[STATUS] (missing: no HTTP status) == 200"
    );
}

#[test]
fn response_time_placeholder_is_milliseconds() {
    let cx = ProbeContext {
        response_time_ms: Some(250),
        ..ProbeContext::default()
    };
    assert!(holds("[RESPONSE_TIME] < 300", &cx));
    assert!(!holds("[RESPONSE_TIME] < 250", &cx));
    assert!(holds("[RESPONSE_TIME] <= 250", &cx));
    assert!(holds("[RESPONSE_TIME] < 1s", &cx));
    assert!(holds("[RESPONSE_TIME] > 249ms", &cx));
    assert_eq!(
        resolved("[RESPONSE_TIME] < 200", &cx),
        "[RESPONSE_TIME] (250) < 200"
    );
    assert!(!holds("[RESPONSE_TIME] < 300", &ProbeContext::default()));
}

#[test]
fn body_placeholder_is_the_trimmed_body() {
    assert!(holds("[BODY] == OK", &body("  OK\n")));
    assert_eq!(resolved("[BODY] == OK", &body("NO\n")), "[BODY] (NO) == OK");
    assert_eq!(
        resolved("[BODY] == OK", &ProbeContext::default()),
        "[BODY] (missing: no body) == OK"
    );
}

#[test]
fn connected_placeholder() {
    let up = ProbeContext {
        connected: true,
        ..ProbeContext::default()
    };
    assert!(holds("[CONNECTED] == true", &up));
    assert!(!holds("[CONNECTED] == false", &up));
    assert!(holds("[CONNECTED] == false", &ProbeContext::default()));
    assert_eq!(
        resolved("[CONNECTED] == true", &ProbeContext::default()),
        "[CONNECTED] (false) == true"
    );
}

#[test]
fn certificate_expiration_is_compared_in_milliseconds_and_shown_as_a_duration() {
    let cx = |ms| ProbeContext {
        certificate_expiration_ms: Some(ms),
        ..ProbeContext::default()
    };
    assert!(holds("[CERTIFICATE_EXPIRATION] > 48h", &cx(49 * HOUR)));
    assert!(!holds("[CERTIFICATE_EXPIRATION] > 48h", &cx(48 * HOUR)));
    assert!(holds("[CERTIFICATE_EXPIRATION] >= 48h", &cx(48 * HOUR)));
    assert!(holds(
        "[CERTIFICATE_EXPIRATION] > 172799999",
        &cx(48 * HOUR)
    ));
    assert!(holds("[CERTIFICATE_EXPIRATION] < 0s", &cx(-1000)));
    // With == and !=, the milliseconds compared are shown.
    assert_eq!(
        resolved("[CERTIFICATE_EXPIRATION] == 0", &cx(3_615_000)),
        "[CERTIFICATE_EXPIRATION] (3615000) == 0"
    );
    assert_eq!(
        resolved("[CERTIFICATE_EXPIRATION] < 1h", &cx(3_615_000)),
        "[CERTIFICATE_EXPIRATION] (1h0m15s) < 1h"
    );
    assert_eq!(
        resolved("[CERTIFICATE_EXPIRATION] > 720h", &cx(14 * 24 * HOUR)),
        "[CERTIFICATE_EXPIRATION] (336h) > 720h"
    );
    assert_eq!(
        resolved("[CERTIFICATE_EXPIRATION] > 48h", &ProbeContext::default()),
        "[CERTIFICATE_EXPIRATION] (missing: no certificate) > 48h"
    );
}

#[test]
fn domain_expiration_placeholder() {
    let cx = ProbeContext {
        domain_expiration_ms: Some(4000 * HOUR),
        ..ProbeContext::default()
    };
    assert!(holds("[DOMAIN_EXPIRATION] > 720h", &cx));
    assert_eq!(
        resolved("[DOMAIN_EXPIRATION] < 720h", &cx),
        "[DOMAIN_EXPIRATION] (4000h) < 720h"
    );
    assert_eq!(
        resolved("[DOMAIN_EXPIRATION] > 720h", &ProbeContext::default()),
        "[DOMAIN_EXPIRATION] (missing: no domain expiration) > 720h"
    );
}

#[test]
fn ip_and_dns_rcode_placeholders() {
    let cx = ProbeContext {
        ip: Some("10.0.0.7".into()),
        dns_rcode: Some("NOERROR".into()),
        ..ProbeContext::default()
    };
    assert!(holds("[IP] == 10.0.0.7", &cx));
    assert!(holds("[IP] == pat(10.0.*)", &cx));
    assert!(holds("[DNS_RCODE] == NOERROR", &cx));
    assert!(!holds("[DNS_RCODE] == NXDOMAIN", &cx));
    let none = ProbeContext::default();
    assert_eq!(
        resolved("[IP] == 10.0.0.7", &none),
        "[IP] (missing: no IP address) == 10.0.0.7"
    );
    assert_eq!(
        resolved("[DNS_RCODE] != NOERROR", &none),
        "[DNS_RCODE] (missing: no DNS response code) != NOERROR"
    );
    assert!(
        !holds("[DNS_RCODE] != NOERROR", &none),
        "missing fails even with !="
    );
}

#[test]
fn placeholder_names_are_case_insensitive() {
    assert!(holds("[status] == 200", &status(200)));
    assert!(holds(
        "[Body].Status == UP",
        &json_body(json!({"Status": "UP"}))
    ));
    assert!(!holds(
        "[body].status == UP",
        &json_body(json!({"Status": "UP"}))
    ));
}

// ---------------------------------------------------------------------------------------------
// JSON paths.

#[test]
fn json_paths_select_keys_and_indexes() {
    let cx = json_body(json!({
        "status": "UP",
        "data": [{"id": 1, "name": "a"}, {"id": 2, "tags": [[10, 11], [12]]}],
        "user": {"name": "john", "first name": "J"},
        "ok": true,
        "ratio": 0.25,
        "whole": 3.0,
        "big": 1_000_000,
        "neg": -5,
    }));
    for (condition, expected) in [
        ("[BODY].status == UP", true),
        ("[BODY].data[0].id == 1", true),
        ("[BODY].data[1].id == 2", true),
        ("[BODY].data[1].tags[0][1] == 11", true),
        ("[BODY].data[1].tags[1][0] == 12", true),
        ("[BODY].user.name == john", true),
        ("[BODY].user.first name == J", true),
        ("[BODY].ok == true", true),
        ("[BODY].ratio == 0.25", true),
        ("[BODY].whole == 3", true),
        ("[BODY].big == 1000000", true),
        ("[BODY].neg < 0", true),
        (
            "[BODY].user == {\"first name\":\"J\",\"name\":\"john\"}",
            true,
        ),
        ("[BODY].data[1].tags == [[10,11],[12]]", true),
        ("[BODY].status == up", false),
        ("[BODY].data[2].id == 3", false),
    ] {
        assert_eq!(holds(condition, &cx), expected, "{condition}");
    }
    assert!(holds("[BODY][1] == b", &json_body(json!(["a", "b"]))));
    assert!(holds("[BODY][0].id == 7", &json_body(json!([{"id": 7}]))));
}

#[test]
fn json_paths_explain_what_is_missing() {
    let cx = json_body(json!({"data": [1, 2], "name": "x", "nothing": null, "obj": {}}));
    for (condition, shown) in [
        (
            "[BODY].nope == 1",
            "[BODY].nope (missing: no key `nope`) == 1",
        ),
        (
            "[BODY].data[2] == 1",
            "[BODY].data[2] (missing: index 2 is out of range (length 2)) == 1",
        ),
        (
            "[BODY].name.first == 1",
            "[BODY].name.first (missing: cannot read key `first` of a string) == 1",
        ),
        (
            "[BODY].data.first == 1",
            "[BODY].data.first (missing: cannot read key `first` of an array) == 1",
        ),
        (
            "[BODY].obj[0] == 1",
            "[BODY].obj[0] (missing: cannot read [0] of an object) == 1",
        ),
        (
            "[BODY].nothing == 1",
            "[BODY].nothing (missing: value is null) == 1",
        ),
    ] {
        let outcome = eval(condition, &cx);
        assert!(!outcome.success, "{condition}");
        assert_eq!(outcome.resolved, shown);
    }
}

#[test]
fn paths_into_a_body_that_is_not_json_are_missing() {
    let cx = body("<html>502 Bad Gateway</html>");
    assert_eq!(
        resolved("[BODY].status == UP", &cx),
        "[BODY].status (missing: body is not JSON) == UP"
    );
    assert!(!holds("[BODY].status != UP", &cx));
    assert!(!holds("len([BODY].items) == 0", &cx));
    assert!(!holds("has([BODY].errors) == false", &cx));
    assert!(!holds("[BODY].status == UP", &ProbeContext::default()));
    // The raw body still works.
    assert!(holds("[BODY] == pat(*Bad Gateway*)", &cx));
}

#[test]
fn deeply_nested_bodies_do_not_overflow_the_stack() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let outcome = eval("[BODY][0][0] == 1", &body(&deep));
    assert!(!outcome.success);
    assert!(
        outcome.resolved.contains("body is not JSON"),
        "{}",
        outcome.resolved
    );
    assert!(!holds("len([BODY]) == 1", &body(&deep)));
}

// ---------------------------------------------------------------------------------------------
// Functions.

#[test]
fn len_of_arrays_strings_and_other_values() {
    let cx = json_body(json!({
        "data": [1, 2, 3],
        "empty": [],
        "name": "john.doe",
        "accented": "héllo",
        "obj": {"a": 1},
        "age": 18,
        "adult": true,
    }));
    for (condition, expected) in [
        ("len([BODY].data) == 3", true),
        ("len([BODY].data) > 0", true),
        ("len([BODY].empty) == 0", true),
        ("len([BODY].name) == 8", true),
        ("len([BODY].accented) == 5", true),
        ("len([BODY].obj) == 7", true),
        ("len([BODY].age) == 2", true),
        ("len([BODY].adult) == 4", true),
    ] {
        assert_eq!(holds(condition, &cx), expected, "{condition}");
    }
    assert_eq!(
        resolved("len([BODY].data) < 3", &cx),
        "len([BODY].data) (3) < 3"
    );
    assert!(holds("len([BODY]) == 3", &body("[1, 2, 3]")));
    assert!(holds("len([BODY]) == 8", &body("john.doe\n")));
    assert!(holds("len([BODY]) == 7", &body("{\"a\":1}")));
    assert!(holds("len([BODY]) == 3", &body("[1,")));
    assert!(holds(
        "len([IP]) == 8",
        &ProbeContext {
            ip: Some("10.0.0.1".into()),
            ..ProbeContext::default()
        }
    ));
    assert!(holds("len([STATUS]) == 3", &status(200)));
    assert_eq!(
        resolved("len([IP]) > 0", &ProbeContext::default()),
        "len([IP]) (missing: no IP address) > 0"
    );
    assert!(!holds("len([BODY]) == 0", &ProbeContext::default()));
}

#[test]
fn has_tells_whether_a_path_leads_somewhere() {
    let cx = json_body(json!({"errors": [], "users": [{"name": "a"}], "gone": null}));
    for (condition, expected) in [
        ("has([BODY].errors) == true", true),
        ("has([BODY].errors) == false", false),
        ("has([BODY].warnings) == false", true),
        ("has([BODY].users[0].name) == true", true),
        ("has([BODY].users[1].name) == true", false),
        ("has([BODY].gone) == false", true),
    ] {
        assert_eq!(holds(condition, &cx), expected, "{condition}");
    }
    assert_eq!(
        resolved("has([BODY].errors) == false", &cx),
        "has([BODY].errors) (true) == false"
    );
    // Other placeholders: whether they have a non-empty value.
    assert!(holds("has([STATUS]) == true", &status(200)));
    assert!(holds("has([STATUS]) == false", &ProbeContext::default()));
    assert!(holds("has([BODY]) == true", &body("x")));
    assert!(holds("has([BODY]) == false", &body("  ")));
    assert!(holds("has([BODY]) == false", &ProbeContext::default()));
}

#[test]
fn pat_matches_globs_on_either_side() {
    let cx = json_body(json!({"name": "john.doe"}));
    assert!(holds("[BODY].name == pat(john*)", &cx));
    assert!(holds("[BODY].name == pat(*.doe)", &cx));
    assert!(holds("[BODY].name == pat(j??n.*)", &cx));
    assert!(!holds("[BODY].name == pat(bob*)", &cx));
    assert!(holds("[BODY].name != pat(bob*)", &cx));
    assert!(holds("pat(john*) == [BODY].name", &cx));
    assert!(holds("[BODY] == pat(*\"name\"*)", &cx));
    // Patterns are taken verbatim, spaces included.
    assert!(holds("[BODY] == pat(a b)", &body("a b")));
    assert!(!holds("[BODY] == pat( a b)", &body("a b")));
    // Nested parentheses in the pattern.
    assert!(holds("[BODY] == pat(*(ok)*)", &body("status (ok) now")));
    // Values compared with a pattern are cut at 25 characters in the resolved text.
    let long = "x".repeat(100);
    assert_eq!(
        resolved("[BODY] == pat(y*)", &body(&long)),
        format!("[BODY] ({}...(truncated)) == pat(y*)", "x".repeat(25))
    );
}

#[test]
fn any_matches_one_of_its_values() {
    assert!(holds("[STATUS] == any(200, 201)", &status(201)));
    assert!(holds("[STATUS] == any(200,201 ,  204)", &status(204)));
    assert!(!holds("[STATUS] == any(200, 201)", &status(500)));
    assert!(holds("[STATUS] != any(500, 503)", &status(200)));
    assert!(!holds("[STATUS] != any(500, 503)", &status(503)));
    assert!(holds("any(200, 429) == [STATUS]", &status(429)));
    assert!(
        holds("[STATUS] == any(0xC8)", &status(200)),
        "integers compare as numbers"
    );
    assert!(holds(
        "[BODY].ip == any(127.0.0.1, ::1)",
        &json_body(json!({"ip": "::1"}))
    ));
}

// ---------------------------------------------------------------------------------------------
// Operators and comparison rules.

#[test]
fn every_operator_on_integers() {
    for (op, results) in [
        ("==", [false, true, false]),
        ("!=", [true, false, true]),
        ("<", [true, false, false]),
        ("<=", [true, true, false]),
        (">", [false, false, true]),
        (">=", [false, true, true]),
    ] {
        for (code, expected) in [199, 200, 201].into_iter().zip(results) {
            assert_eq!(
                holds(&format!("[STATUS] {op} 200"), &status(code)),
                expected,
                "{code} {op} 200"
            );
        }
    }
}

#[test]
fn integers_compare_as_numbers() {
    assert!(
        holds("[BODY] == 0200", &body("128")),
        "leading 0 is octal, as in Go"
    );
    assert!(holds("[BODY] == +5", &body("5")));
    assert!(holds("[BODY] == 1_000", &body("1000")));
    assert!(holds("[BODY] > 9", &body("10")), "not text order");
    assert!(holds("[BODY] < -1", &body("-2")));
    assert!(holds("[BODY].n == 0x10", &json_body(json!({"n": 16}))));
    assert!(holds(
        "[RESPONSE_TIME] > 9223372036854775807",
        &ProbeContext {
            response_time_ms: Some(u64::MAX),
            ..ProbeContext::default()
        }
    ));
}

#[test]
fn durations_convert_to_milliseconds() {
    let cx = |ms: i64| ProbeContext {
        certificate_expiration_ms: Some(ms),
        ..ProbeContext::default()
    };
    assert!(holds(
        "[CERTIFICATE_EXPIRATION] > 1h30m",
        &cx(90 * 60_000 + 1)
    ));
    assert!(!holds("[CERTIFICATE_EXPIRATION] > 1h30m", &cx(90 * 60_000)));
    assert!(holds(
        "[CERTIFICATE_EXPIRATION] == 5400000",
        &cx(90 * 60_000)
    ));
    assert!(holds("[CERTIFICATE_EXPIRATION] < 720h", &cx(719 * HOUR)));
    assert!(holds("[CERTIFICATE_EXPIRATION] >= 500ms", &cx(500)));
    assert!(holds("[CERTIFICATE_EXPIRATION] < 30s", &cx(29_999)));
    assert!(holds(
        "[BODY].uptime > 5m",
        &json_body(json!({"uptime": "1h"}))
    ));
    // `==` compares text or integers, not durations.
    assert!(!holds("[CERTIFICATE_EXPIRATION] == 48h", &cx(48 * HOUR)));
}

#[test]
fn decimals_compare_exactly() {
    let cx = json_body(json!({"temp": 20.5, "text": "123.40000000000005"}));
    assert!(holds("[BODY].temp > 20", &cx));
    assert!(holds("[BODY].temp < 20.6", &cx));
    assert!(holds("[BODY].temp >= 20.5", &cx));
    assert!(holds("[BODY].text > 123.4", &cx));
    assert!(holds("[BODY].temp > 1e1", &cx));
    // `==` does not: 20.50 is not the text 20.5.
    assert!(!holds("[BODY].temp == 20.50", &cx));
}

#[test]
fn ordering_text_fails_and_says_not_a_number() {
    let cx = json_body(json!({"state": "DOWN", "n": 3}));
    for op in ["<", "<=", ">", ">="] {
        assert!(!holds(&format!("[BODY].state {op} 5"), &cx), "{op}");
        assert!(!holds(&format!("[BODY].n {op} abc"), &cx), "{op}");
        assert!(!holds(&format!("b {op} a"), &cx), "{op}");
    }
    assert_eq!(
        resolved("[BODY].state < 5", &cx),
        "[BODY].state (DOWN: not a number) < 5"
    );
    assert_eq!(
        resolved("[BODY].n > abc", &cx),
        "[BODY].n (3) > abc (not a number)"
    );
    assert!(!holds("[BODY] < 5", &body("NaN")));
    assert!(!holds("[BODY] > 5", &body("inf")));
}

#[test]
fn equality_of_text_is_exact() {
    assert!(holds("[BODY] == UP", &body("UP")));
    assert!(!holds("[BODY] == up", &body("UP")));
    assert!(holds("[BODY] != up", &body("UP")));
    assert!(
        !holds("[BODY] == \"UP\"", &body("UP")),
        "quotes are part of the text"
    );
    assert!(holds("a b == a b", &ProbeContext::default()));
}

#[test]
fn the_first_operator_outside_brackets_wins() {
    let cx = json_body(json!({"a": "x<y", "html": "<b>"}));
    assert!(holds("[BODY].a == x<y", &cx));
    assert!(holds("[BODY].html == <b>", &cx));
    assert!(holds("[BODY].html != <i>", &cx));
    assert!(holds("[STATUS]>=200", &status(200)));
    assert!(holds("[STATUS]<300", &status(200)));
    assert!(holds("[STATUS]!=300", &status(200)));
    assert!(holds("\"a == b\" == \"a == b\"", &ProbeContext::default()));
    assert!(holds("'x>y' == 'x>y'", &ProbeContext::default()));
    assert!(holds(
        "[BODY].msg == it's ok",
        &json_body(json!({"msg": "it's ok"}))
    ));
}

#[test]
fn resolved_shows_both_sides() {
    let cx = json_body(json!({"a": 1, "b": 2}));
    assert_eq!(
        resolved("[BODY].a == [BODY].b", &cx),
        "[BODY].a (1) == [BODY].b (2)"
    );
    assert_eq!(resolved("  [BODY].a==1  ", &cx), "[BODY].a (1) == 1");
    let long = "y".repeat(500);
    assert_eq!(
        resolved("[BODY] == x", &body(&long)),
        format!("[BODY] ({}...(truncated)) == x", "y".repeat(200))
    );
    assert_eq!(
        resolved("[STATUS] == any(1, 2)", &status(3)),
        "[STATUS] (3) == any(1, 2)"
    );
}

// ---------------------------------------------------------------------------------------------
// Parse errors.

#[test]
fn errors_name_the_column() {
    let e = parse_err("[STATUS] == [STATU]");
    assert_eq!(e.column, 13);
    assert!(
        e.message.starts_with(
            "unknown placeholder [STATU]; expected one of [STATUS], [RESPONSE_TIME], "
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!("column 13: {}", e.message),
        "Display is `column N: message`"
    );
    assert_eq!(parse_err("[STATU] == 200").column, 1);
    assert_eq!(parse_err("len([STATU]) > 0").column, 5);
    assert_eq!(parse_err("  [X] == 1").column, 3);
    // Columns count characters, not bytes.
    assert_eq!(parse_err("é == [NOPE]").column, 6);
}

#[test]
fn error_messages() {
    for (text, column, message) in [
        (
            "[STATUS]",
            1,
            "no comparison operator (==, !=, <, <=, >, >=)",
        ),
        ("", 1, "no comparison operator (==, !=, <, <=, >, >=)"),
        (
            "[STATUS] ? 201",
            1,
            "no comparison operator (==, !=, <, <=, >, >=)",
        ),
        (
            "[STATUS] = 200",
            10,
            "no comparison operator (==, !=, <, <=, >, >=); use == to test equality",
        ),
        (
            "[STATUS] = = 201",
            10,
            "no comparison operator (==, !=, <, <=, >, >=); use == to test equality",
        ),
        ("[STATUS == 200", 1, "unclosed bracket"),
        ("len([BODY].users == 100", 4, "unclosed parenthesis"),
        ("[BODY] == [abc", 11, "unclosed bracket"),
        ("[BODY] == pat(abc", 14, "unclosed parenthesis"),
        ("[BODY] == pat(a)b", 17, "unexpected text after pat(…)"),
        ("[STATUS] ==", 12, "missing right-hand side after =="),
        ("[STATUS] ==   ", 12, "missing right-hand side after =="),
        ("== 200", 1, "missing left-hand side before =="),
        (
            "len([BODY].a, [BODY].b) == 1",
            5,
            "len() takes one argument",
        ),
        ("len() == 1", 5, "len() takes one argument"),
        ("has( ) == true", 5, "has() takes one argument"),
        (
            "len(abc) == 1",
            5,
            "len() takes a placeholder, such as len([BODY].data)",
        ),
        (
            "len(len([BODY])) == 1",
            5,
            "len() takes a placeholder, such as len([BODY].data)",
        ),
        ("[STATUS] == any()", 17, "any() takes at least one value"),
        ("[STATUS] > pat(2*)", 12, "pat() works only with == and !="),
        (
            "any(1, 2) <= [STATUS]",
            1,
            "any() works only with == and !=",
        ),
        (
            "pat(a*) == any(a, b)",
            12,
            "pat() and any() can be used on one side only",
        ),
        (
            "[STATUS].code == 1",
            9,
            "unexpected text after [STATUS] (only [BODY] takes a JSON path)",
        ),
        ("[BODY]. == 1", 7, "invalid JSON path: empty key after `.`"),
        (
            "[BODY].a..b == 1",
            9,
            "invalid JSON path: empty key after `.`",
        ),
        (
            "[BODY].data[x] == 1",
            12,
            "invalid JSON path: [x] is not an array index such as [0]",
        ),
        (
            "[BODY].data[-1] == 1",
            12,
            "invalid JSON path: [-1] is not an array index such as [0]",
        ),
        (
            "[BODY].data[] == 1",
            12,
            "invalid JSON path: [] is not an array index such as [0]",
        ),
        (
            "[BODY].data[99999999999999999999999] == 1",
            12,
            "invalid JSON path: index [99999999999999999999999] is too large",
        ),
        (
            "[BODY]x == 1",
            7,
            "invalid JSON path: expected `.key` or `[index]` after [BODY]",
        ),
        (
            "[CONTEXT].user == 1",
            1,
            "[CONTEXT] (Gatus suite context) is not supported",
        ),
    ] {
        let e = parse_err(text);
        assert_eq!(
            (e.column, e.message.as_str()),
            (column, message),
            "{text:?}"
        );
    }
}

#[test]
fn long_conditions_and_deep_paths_are_refused() {
    let at_limit = format!("[BODY] == {}", "x".repeat(MAX_CONDITION_CHARS - 10));
    assert_eq!(at_limit.chars().count(), MAX_CONDITION_CHARS);
    parse(&at_limit);
    let e = parse_err(&format!("{at_limit}x"));
    assert_eq!(e.column, MAX_CONDITION_CHARS + 1);
    assert_eq!(e.message, "condition is longer than 1024 characters");

    let deep = |n: usize| format!("[BODY]{} == 1", ".a".repeat(n));
    parse(&deep(MAX_PATH_DEPTH));
    let e = parse_err(&deep(MAX_PATH_DEPTH + 1));
    assert_eq!(e.message, "invalid JSON path: more than 32 steps");
    assert_eq!(e.column, 7 + 2 * MAX_PATH_DEPTH);
}

#[test]
fn literals_that_only_look_like_brackets_are_text() {
    assert!(holds("[BODY] == [1,2]", &body("[1,2]")));
    assert!(holds("[BODY] == [ ]", &body("[ ]")));
    // A `[NAME]` that is not a placeholder is refused; pat() compares with it literally.
    assert!(Condition::parse("[BODY] == [OK]").is_err());
    assert!(holds("[BODY] == pat([OK])", &body("[OK]")));
    // Function names are lower-case, as in Gatus: anything else is text.
    assert!(holds("[BODY] == LEN(x)", &body("LEN(x)")));
    assert!(holds("[BODY] == hash(x)", &body("hash(x)")));
}

// ---------------------------------------------------------------------------------------------
// The rest of the API.

#[test]
fn as_str_and_display_give_the_original_text() {
    for text in ["[STATUS] == 200", "  [BODY].a==1 ", "len([BODY]) > 0\n"] {
        let condition = parse(text);
        assert_eq!(condition.as_str(), text);
        assert_eq!(condition.to_string(), text);
    }
    assert_eq!(parse("[STATUS] == 200"), parse("[STATUS] == 200"));
    assert_ne!(parse("[STATUS] == 200"), parse("[STATUS]  == 200"));
}

#[test]
fn latency_conditions_mention_the_response_time() {
    for (text, latency) in [
        ("[RESPONSE_TIME] < 500", true),
        ("[response_time] < 500", true),
        ("500 > [RESPONSE_TIME]", true),
        ("len([RESPONSE_TIME]) < 4", true),
        ("[STATUS] == 200", false),
        ("[BODY].response_time < 500", false),
        ("[BODY] == [RESPONSE_TIME]x", false),
    ] {
        match Condition::parse(text) {
            Ok(c) => assert_eq!(c.is_latency(), latency, "{text}"),
            Err(_) => assert!(!latency, "{text} should parse"),
        }
    }
}

#[test]
fn evaluate_all_keeps_order_and_reads_the_body_once() {
    let conditions: Vec<Condition> = [
        "[STATUS] == 200",
        "[BODY].status == UP",
        "len([BODY].items) > 0",
        "[RESPONSE_TIME] < 100",
    ]
    .iter()
    .map(|t| parse(t))
    .collect();
    let cx = ProbeContext {
        status: Some(200),
        response_time_ms: Some(150),
        body: Some(json!({"status": "UP", "items": []}).to_string()),
        ..ProbeContext::default()
    };
    let outcomes = evaluate_all(&conditions, &cx);
    let successes: Vec<bool> = outcomes.iter().map(|o| o.success).collect();
    assert_eq!(successes, [true, true, false, false]);
    assert_eq!(outcomes[2].resolved, "len([BODY].items) (0) > 0");
    for (condition, outcome) in conditions.iter().zip(&outcomes) {
        assert_eq!(&condition.evaluate(&cx), outcome);
    }

    // One parse, shared by every condition; none when no condition needs it.
    let resolver = Resolver::new(&cx);
    let first: *const Value = resolver.json().unwrap();
    let second: *const Value = resolver.json().unwrap();
    assert_eq!(first, second);
    let resolver = Resolver::new(&cx);
    conditions[0].evaluate_with(&resolver);
    conditions[3].evaluate_with(&resolver);
    assert!(
        resolver.json.get().is_none(),
        "the body was read as JSON needlessly"
    );
    assert!(evaluate_all(&[], &cx).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The Gatus conditions file.

fn context_from(json: &str) -> ProbeContext {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut cx = ProbeContext::default();
    for (key, value) in value.as_object().unwrap() {
        let text = || value.as_str().unwrap().to_owned();
        match key.as_str() {
            "status" => cx.status = Some(u16::try_from(value.as_u64().unwrap()).unwrap()),
            "response_time_ms" => cx.response_time_ms = Some(value.as_u64().unwrap()),
            "body" => cx.body = Some(text()),
            "json" => cx.body = Some(value.to_string()),
            "connected" => cx.connected = value.as_bool().unwrap(),
            "certificate_expiration_ms" => {
                cx.certificate_expiration_ms = Some(value.as_i64().unwrap());
            }
            "ip" => cx.ip = Some(text()),
            "dns_rcode" => cx.dns_rcode = Some(text()),
            "domain_expiration_ms" => cx.domain_expiration_ms = Some(value.as_i64().unwrap()),
            other => panic!("unknown context key {other:?}"),
        }
    }
    cx
}

#[test]
fn gatus_conditions_file() {
    let mut cases = 0;
    for (number, line) in include_str!("../gatus_conditions.txt").lines().enumerate() {
        let number = number + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert!(
            (3..=4).contains(&fields.len()),
            "line {number}: expected 3 or 4 tab-separated fields"
        );
        let (text, cx, expected) = (fields[0], context_from(fields[1]), fields[2]);
        cases += 1;
        if expected == "error" {
            assert!(
                Condition::parse(text).is_err(),
                "line {number}: {text:?} should not parse"
            );
            continue;
        }
        let condition = Condition::parse(text)
            .unwrap_or_else(|e| panic!("line {number}: {text:?} should parse: {e}"));
        assert_eq!(condition.as_str(), text);
        let outcome = condition.evaluate(&cx);
        let expected = match expected {
            "true" => true,
            "false" => false,
            other => panic!("line {number}: expected true, false or error, not {other:?}"),
        };
        assert_eq!(
            outcome.success, expected,
            "line {number}: {text:?} resolved to {:?}",
            outcome.resolved
        );
        if let Some(shown) = fields.get(3) {
            assert_eq!(outcome.resolved, *shown, "line {number}: {text:?}");
        }
    }
    assert!(cases >= 40, "only {cases} cases");
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// Pieces conditions are made of, and pieces that break them.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "[STATUS]",
            "[status]",
            "[BODY]",
            "[RESPONSE_TIME]",
            "[CONNECTED]",
            "[CERTIFICATE_EXPIRATION]",
            "[DOMAIN_EXPIRATION]",
            "[IP]",
            "[DNS_RCODE]",
            "[CONTEXT]",
            "[STATU]",
            ".data",
            ".",
            "[0]",
            "[99]",
            "[",
            "]",
            "(",
            ")",
            "len(",
            "has(",
            "pat(",
            "any(",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "=",
            "!",
            " ",
            "  ",
            ",",
            "*",
            "?",
            "\"",
            "'",
            "200",
            "-1",
            "0x1F",
            "48h",
            "1.5",
            "true",
            "UP",
            "é",
            "\u{3bc}s",
            "\t",
            "\n",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9_]{1,4}",
        any::<char>().prop_map(String::from),
    ]
}

fn condition_like() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 0..16).prop_map(|tokens| tokens.concat())
}

/// Conditions that parse: a left side, an operator, a right side.
fn valid_condition() -> impl Strategy<Value = String> {
    let left = prop::sample::select(vec![
        "[STATUS]",
        "[RESPONSE_TIME]",
        "[BODY]",
        "[BODY].status",
        "[BODY].data[0].id",
        "[BODY][1]",
        "len([BODY].data)",
        "has([BODY].errors)",
        "[CERTIFICATE_EXPIRATION]",
        "[DOMAIN_EXPIRATION]",
        "[CONNECTED]",
        "[IP]",
        "[DNS_RCODE]",
        "raw",
    ]);
    let op = prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]);
    let right = prop::sample::select(vec![
        "200",
        "UP",
        "true",
        "false",
        "48h",
        "1h30m",
        "500ms",
        "0x10",
        "-3",
        "2.5",
        "[BODY].id",
    ]);
    let pad = prop::sample::select(vec!["", " ", "  ", "\t"]);
    (pad.clone(), left, pad.clone(), op, pad.clone(), right, pad)
        .prop_map(|(a, l, b, o, c, r, d)| format!("{a}{l}{b}{o}{c}{r}{d}"))
}

/// A JSON value of bounded size.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        (-1e300f64..1e300).prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        prop::sample::select(vec!["UP", "DOWN", "0x1", "48h", "200"])
            .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec!["status", "data", "id", "errors", "name", "a"])
                    .prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

fn probe_context() -> impl Strategy<Value = ProbeContext> {
    let body = prop_oneof![
        Just(None),
        any::<String>().prop_map(Some),
        json_value().prop_map(|v| Some(v.to_string())),
    ];
    (
        any::<Option<u16>>(),
        any::<Option<u64>>(),
        body,
        any::<bool>(),
        any::<Option<i64>>(),
        any::<Option<String>>(),
        any::<Option<String>>(),
        any::<Option<i64>>(),
    )
        .prop_map(
            |(status, response_time_ms, body, connected, cert, ip, dns_rcode, domain)| {
                ProbeContext {
                    status,
                    response_time_ms,
                    body,
                    connected,
                    certificate_expiration_ms: cert,
                    ip,
                    dns_rcode,
                    domain_expiration_ms: domain,
                }
            },
        )
}

/// Conditions that exercise every placeholder, function and rule.
fn sample_conditions() -> Vec<Condition> {
    [
        "[STATUS] == 200",
        "[STATUS] < 300",
        "[STATUS] == any(200, 201)",
        "[STATUS] == pat(2*)",
        "[RESPONSE_TIME] < 500",
        "[RESPONSE_TIME] > 1s",
        "[BODY] == pat(*OK*)",
        "[BODY] != any(UP, DOWN)",
        "[BODY].status == UP",
        "[BODY].data[0].id >= 1",
        "[BODY][0] == 1",
        "[BODY].a[1].a[2].a < 2.5",
        "len([BODY]) > 0",
        "len([BODY].data) > 0",
        "len([BODY].name) == 8",
        "has([BODY].errors) == false",
        "has([BODY]) == true",
        "[BODY].id == [BODY].data",
        "[CONNECTED] == true",
        "[CERTIFICATE_EXPIRATION] > 48h",
        "[DOMAIN_EXPIRATION] > 720h",
        "[IP] == pat(10.*)",
        "[DNS_RCODE] == NOERROR",
        "len([IP]) <= 15",
    ]
    .iter()
    .map(|t| parse(t))
    .collect()
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        if let Ok(condition) = Condition::parse(&text) {
            prop_assert_eq!(condition.as_str(), text.as_str());
            let _ = condition.evaluate(&ProbeContext::default());
        }
    }

    #[test]
    fn parsing_condition_like_text_never_panics(
        text in condition_like(),
        cx in probe_context(),
    ) {
        match Condition::parse(&text) {
            Ok(condition) => {
                prop_assert_eq!(condition.as_str(), text.as_str());
                let outcome = condition.evaluate(&cx);
                prop_assert!(!outcome.resolved.is_empty());
            }
            Err(e) => {
                prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{e}");
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn valid_conditions_parse_and_round_trip(text in valid_condition()) {
        let condition = Condition::parse(&text);
        prop_assert!(condition.is_ok(), "{:?}: {:?}", text, condition);
        if let Ok(condition) = condition {
            prop_assert_eq!(condition.as_str(), text.as_str());
            prop_assert_eq!(Condition::parse(condition.as_str()).ok(), Some(condition.clone()));
            prop_assert_eq!(condition.is_latency(), text.contains("[RESPONSE_TIME]"));
        }
    }

    #[test]
    fn evaluation_never_panics(cx in probe_context()) {
        let conditions = sample_conditions();
        let outcomes = evaluate_all(&conditions, &cx);
        prop_assert_eq!(outcomes.len(), conditions.len());
        for (condition, outcome) in conditions.iter().zip(&outcomes) {
            prop_assert_eq!(&condition.evaluate(&cx), outcome);
        }
    }

    #[test]
    fn integer_comparisons_agree_with_rust(a in any::<i64>(), b in any::<i64>(), op in 0usize..6) {
        let (symbol, expected) = [
            ("==", a == b),
            ("!=", a != b),
            ("<", a < b),
            ("<=", a <= b),
            (">", a > b),
            (">=", a >= b),
        ][op];
        let literal = parse(&format!("{a} {symbol} {b}")).evaluate(&ProbeContext::default());
        prop_assert_eq!(literal.success, expected, "{}", literal.resolved);
        let raw_body = parse(&format!("[BODY] {symbol} {b}")).evaluate(&body(&a.to_string()));
        prop_assert_eq!(raw_body.success, expected, "{}", raw_body.resolved);
        let json = parse(&format!("[BODY].n {symbol} {b}")).evaluate(&json_body(json!({"n": a})));
        prop_assert_eq!(json.success, expected, "{}", json.resolved);
        let cert = ProbeContext { certificate_expiration_ms: Some(a), ..ProbeContext::default() };
        let placeholder = parse(&format!("[CERTIFICATE_EXPIRATION] {symbol} {b}")).evaluate(&cert);
        prop_assert_eq!(placeholder.success, expected, "{}", placeholder.resolved);
    }

    #[test]
    fn status_and_response_time_compare_like_rust(s in any::<u16>(), t in any::<u64>(), b in any::<i64>()) {
        let cx = ProbeContext { status: Some(s), response_time_ms: Some(t), ..ProbeContext::default() };
        prop_assert_eq!(parse(&format!("[STATUS] < {b}")).evaluate(&cx).success, i64::from(s) < b);
        prop_assert_eq!(
            parse(&format!("[RESPONSE_TIME] >= {b}")).evaluate(&cx).success,
            i128::from(t) >= i128::from(b)
        );
    }

    #[test]
    fn duration_milliseconds_compare_like_rust(ms in any::<i64>(), limit in 0i64..10_000_000) {
        let cx = ProbeContext { certificate_expiration_ms: Some(ms), ..ProbeContext::default() };
        prop_assert_eq!(parse(&format!("[CERTIFICATE_EXPIRATION] > {limit}ms")).evaluate(&cx).success, ms > limit);
        let seconds = limit / 1000;
        prop_assert_eq!(
            parse(&format!("[CERTIFICATE_EXPIRATION] <= {seconds}s")).evaluate(&cx).success,
            ms <= seconds * 1000
        );
    }

    #[test]
    fn star_patterns_agree_with_str_methods(text in "[ab*?]{0,12}", piece in "[ab]{0,4}") {
        prop_assert_eq!(glob::matches(&format!("*{piece}*"), &text), text.contains(piece.as_str()));
        prop_assert_eq!(glob::matches(&format!("{piece}*"), &text), text.starts_with(piece.as_str()));
        prop_assert_eq!(glob::matches(&format!("*{piece}"), &text), text.ends_with(piece.as_str()));
        prop_assert_eq!(glob::matches(&piece, &text), piece == text);
        prop_assert!(glob::matches(&text.replace('?', "*"), &text));
    }
}
