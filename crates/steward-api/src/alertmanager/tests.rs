//! Alertmanager's filter syntax and query flags, read as Alertmanager reads them.

use super::*;
use proptest::prelude::*;

fn parsed(text: &str) -> (String, MatchOp, String) {
    let m = parse_matcher(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    (m.name.clone(), m.op, m.value.clone())
}

#[test]
fn filters_read_as_alertmanager_reads_them() {
    let eq = |n: &str, v: &str| (n.to_owned(), MatchOp::Equal, v.to_owned());
    assert_eq!(parsed("alertname=X"), eq("alertname", "X"));
    assert_eq!(parsed(r#"alertname="X""#), eq("alertname", "X"));
    assert_eq!(parsed(r#"  a = "b c"  "#), eq("a", "b c"));
    assert_eq!(parsed("a="), eq("a", ""));
    assert_eq!(parsed(r#"a="""#), eq("a", ""));
    assert_eq!(parsed(r#"a="say \"hi\"""#), eq("a", r#"say "hi""#));
    assert_eq!(parsed(r#"a="x\\y\nz""#), eq("a", "x\\y\nz"));
    assert_eq!(parsed("a=x,y"), eq("a", "x,y"), "one matcher per filter");
    assert_eq!(parsed("a==b"), eq("a", "=b"));
    assert_eq!(
        parsed(r#"severity=~"crit.*""#),
        ("severity".into(), MatchOp::Regex, "crit.*".into())
    );
    assert_eq!(
        parsed(r#"instance=~"host\d+""#),
        ("instance".into(), MatchOp::Regex, r"host\d+".into()),
        "a backslash that escapes nothing stays"
    );
    assert_eq!(parsed("a!=b"), ("a".into(), MatchOp::NotEqual, "b".into()));
    assert_eq!(
        parsed("a!~b|c"),
        ("a".into(), MatchOp::NotRegex, "b|c".into())
    );
    let regex = parse_matcher(r#"severity=~"crit.*""#).unwrap();
    let labels = |v: &str| [("severity".to_owned(), v.to_owned())].into();
    assert!(regex.matches(&labels("critical")));
    assert!(!regex.matches(&labels("a critical")), "anchored");
    for refused in [
        "",
        "alertname",
        "=X",
        "1a=b",
        "a:b=c",
        "a b=c",
        r#"a="b"#,
        r#"a="b\""#,
        r#"a=b"c"#,
        r#"a="b"c""#,
        "a=~(",
        "{a=\"b\"}",
    ] {
        assert!(parse_matcher(refused).is_err(), "{refused:?} was taken");
    }
}

#[test]
fn query_flags_default_to_true_and_take_only_booleans() {
    let pairs = |list: &[(&str, &str)]| -> Pairs {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(alerts_query(Vec::new()).unwrap(), AlertsQuery::default());
    let query = alerts_query(pairs(&[
        ("active", "false"),
        ("silenced", "true"),
        ("inhibited", "0"),
        ("unprocessed", "false"),
        ("filter", "a=b"),
        ("filter", "c=~d"),
        ("receiver", "n8n|slack"),
        ("ignored", "x"),
    ]))
    .unwrap();
    assert!(!query.active && query.silenced && !query.inhibited && !query.unprocessed);
    assert_eq!(query.filter, ["a=b", "c=~d"]);
    assert_eq!(query.receiver.as_deref(), Some("n8n|slack"));
    let refused = alerts_query(pairs(&[("active", "yes please")])).unwrap_err();
    assert_eq!(refused.code(), "invalid_query");
    let re = receiver_filter(&query).unwrap().unwrap();
    assert!(re.is_match("slack") && !re.is_match("slack2"));
    let bad = AlertsQuery {
        receiver: Some("(".into()),
        ..AlertsQuery::default()
    };
    assert_eq!(receiver_filter(&bad).unwrap_err().code(), "invalid_query");
}

#[test]
fn the_flags_show_active_silenced_and_inhibited_alerts_as_alertmanager_does() {
    let none = Mutes::default();
    let silenced = Mutes {
        silences: vec![1],
        ..Mutes::default()
    };
    let window = Mutes {
        windows: vec!["sunday".into()],
        ..Mutes::default()
    };
    let inhibited = Mutes {
        inhibitors: vec![steward_core::alert::Fingerprint(1)],
        ..Mutes::default()
    };
    // What amtool sends by default, and with `--silenced`.
    let default = AlertsQuery {
        silenced: false,
        inhibited: false,
        unprocessed: false,
        ..AlertsQuery::default()
    };
    let only_silenced = AlertsQuery {
        active: false,
        silenced: true,
        inhibited: false,
        unprocessed: false,
        ..AlertsQuery::default()
    };
    assert!(shown(&default, &none));
    assert!(!shown(&default, &silenced));
    assert!(!shown(&default, &window));
    assert!(!shown(&default, &inhibited));
    assert!(!shown(&only_silenced, &none));
    assert!(shown(&only_silenced, &silenced));
    assert!(shown(&only_silenced, &window));
    assert!(!shown(&only_silenced, &inhibited));
    for mutes in [&none, &silenced, &window, &inhibited] {
        assert!(shown(&AlertsQuery::default(), mutes));
    }
}

proptest! {
    #[test]
    fn the_filter_parser_never_panics(text in any::<String>()) {
        let _ = parse_matcher(&text);
    }

    #[test]
    fn filters_shaped_like_matchers_never_panic(
        name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,8}",
        op in prop::sample::select(vec!["=", "!=", "=~", "!~", "==", "~", ""]),
        value in r#"[ "\\a-z.*+(|)\[\]{}n,~=!]{0,16}"#,
    ) {
        let _ = parse_matcher(&format!("{name}{op}{value}"));
        let _ = parse_matcher(&format!("{name}{op}\"{value}\""));
    }

    #[test]
    fn a_quoted_value_reads_back_what_was_quoted(value in "\\PC{0,24}") {
        let quoted = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let m = parse_matcher(&format!("name=\"{quoted}\"")).unwrap();
        prop_assert_eq!(m.value, value);
    }
}
