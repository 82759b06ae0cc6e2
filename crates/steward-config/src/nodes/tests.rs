use super::*;
use crate::load::{LoadError, parse_str};
use proptest::prelude::*;
use toml_edit::Value;

use crate::test_support::{assert_error, env, errors, parse};

const FLEET: &str = r#"[fleet]
down_after = 5
grace = "10s"

[[workspaces]]
key = "edge"

[[nodes]]
id = "vps-01"
hostname = "vps-01.example.com"
address = "203.0.113.10"
workspace = "edge"
labels = { region = "eu", role = "proxy" }

[[nodes]]
id = "vps-02"

[[services]]
name = "proxy"
node = "vps-01"
"#;

/// A workspace (lines 1–2) and a node's first line (3): a case's own lines start on line 4.
fn node(lines: &str) -> String {
    format!("[[workspaces]]\nkey = \"edge\"\n[[nodes]]\n{lines}\n")
}

#[test]
fn nodes_and_fleet_are_read() {
    let config = parse(FLEET);
    assert_eq!(
        config.nodes,
        vec![
            NodeSpec {
                id: "vps-01".into(),
                hostname: "vps-01.example.com".into(),
                address: Some("203.0.113.10".into()),
                workspace: Some("edge".into()),
                labels: [("region", "eu"), ("role", "proxy")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            },
            NodeSpec {
                id: "vps-02".into(),
                ..NodeSpec::default()
            },
        ]
    );
    assert_eq!(
        config.fleet,
        FleetSpec {
            down_after_intervals: 5,
            grace_ms: Some(10_000),
        }
    );
    let loaded = parse_str("f.toml", FLEET, &env).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn without_nodes_or_fleet_the_defaults_hold() {
    let config = parse("[[workspaces]]\nkey = \"edge\"\n");
    assert!(config.nodes.is_empty());
    assert_eq!(config.fleet, FleetSpec::default());
    assert_eq!(config.fleet.down_after_intervals, 3);
    assert_eq!(config.fleet.grace_ms, None);
    let config = parse("[fleet]\n");
    assert_eq!(config.fleet, FleetSpec::default());
}

#[test]
fn node_ids_are_checked_at_their_value() {
    assert!(errors(&node("id = \"vps 01\"")).contains(
        "f.toml:4:6: error: `nodes[0].id`: a node id is letters, digits, `-`, `_` and `.`, starting with a letter or digit (found `vps 01`)"
    ));
    assert!(
        errors(&node("id = \"\""))
            .contains("f.toml:4:6: error: `nodes[0].id`: a node id cannot be empty")
    );
    assert_error(
        &node("id = \"-vps\""),
        4,
        "`nodes[0].id`: a node id is letters, digits",
    );
    assert_error(
        &node(&format!("id = \"{}\"", "a".repeat(65))),
        4,
        "`nodes[0].id`: a node id has at most 64 characters",
    );
    assert_error(
        &node("id = \"${TOKEN}\""),
        4,
        "`nodes[0].id`: a node id is letters, digits",
    );
    assert_error(
        &node("id = 7"),
        4,
        "`nodes[0].id`: expected a string, found integer",
    );
    assert!(errors(&node("hostname = \"h\"")).contains(
        "f.toml:3:1: error: `nodes[0].id`: missing required field (e.g. id = \"vps-01\")"
    ));
}

#[test]
fn node_fields_are_checked() {
    assert!(
        errors(&node("id = \"a\"\nhostnme = \"h\"")).contains(
            "f.toml:5:1: error: unknown key `nodes[0].hostnme`: did you mean `hostname`?"
        )
    );
    assert!(
        errors(&node("id = \"a\"\nlabels = { role = 3 }")).contains(
            "f.toml:5:19: error: `nodes[0].labels.role`: expected a string, found integer"
        )
    );
    assert_error(
        &node("id = \"a\"\nlabels = \"proxy\""),
        5,
        "`nodes[0].labels`: expected a table of strings, found string",
    );
    assert!(errors(&node("id = \"a\"\nworkspace = \"egde\"")).contains(
        "f.toml:5:13: error: `nodes[0].workspace`: unknown workspace `egde`; did you mean `edge`?"
    ));
    assert_error(
        &node("id = \"a\"\nhostname = 3"),
        5,
        "`nodes[0].hostname`: expected a string, found integer",
    );
    assert_error(
        &node("id = \"a\"\naddress = \"${TOKEN}\""),
        5,
        "`nodes[0].address`: cannot use `${VAR}`: it is shown in the API",
    );
    assert_error(
        "nodes = 3\n",
        1,
        "`nodes`: expected an array of tables (`[[nodes]]`), found integer",
    );
    assert_error(
        "[[nodez]]\nid = \"a\"\n",
        1,
        "unknown key `nodez`: did you mean `nodes`?",
    );
}

#[test]
fn a_duplicate_id_points_at_the_first() {
    let text = "[[nodes]]\nid = \"vps-01\"\n[[nodes]]\nid = \"vps-01\"\n";
    assert!(errors(text).contains(
        "f.toml:4:6: error: `nodes[1].id`: duplicate node `vps-01` (first declared at f.toml:2:6)"
    ));
    // The first declaration is kept and not reported.
    assert_eq!(errors(text).lines().count(), 1, "{}", errors(text));
}

#[test]
fn fleet_settings_are_checked() {
    assert!(
        errors("[fleet]\ndown_after = 1\n")
            .contains("f.toml:2:14: error: `fleet.down_after`: 1 is out of range (2 to 100)")
    );
    assert_error(
        "[fleet]\ndown_after = 101\n",
        2,
        "`fleet.down_after`: 101 is out of range (2 to 100)",
    );
    assert_error(
        "[fleet]\ndown_after = \"3\"\n",
        2,
        "`fleet.down_after`: expected an integer, found string",
    );
    assert!(
        errors("[fleet]\ngrace = \"soon\"\n")
            .contains("f.toml:2:9: error: `fleet.grace`: `soon` is not a duration")
    );
    assert_error(
        "[fleet]\ngrace = 5\n",
        2,
        "`fleet.grace`: expected a duration as a string",
    );
    assert_error(
        "[fleet]\ngrace = \"0s\"\n",
        2,
        "`fleet.grace`: must be more than zero",
    );
    assert_error(
        "[fleet]\ndown_afer = 3\n",
        2,
        "unknown key `fleet.down_afer`: did you mean `down_after`?",
    );
    assert_error("fleet = 3\n", 1, "`fleet`: expected a table, found integer");
    let config = parse("[fleet]\ndown_after = 2\ngrace = \"1m 30s\"\n");
    assert_eq!(config.fleet.down_after_intervals, 2);
    assert_eq!(config.fleet.grace_ms, Some(90_000));
}

#[test]
fn a_service_on_an_undeclared_node_is_a_warning() {
    let text = "[[nodes]]\nid = \"vps-01\"\n[[services]]\nname = \"api\"\nnode = \"vps-1\"\n";
    let loaded = parse_str("f.toml", text, &env).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "f.toml:5:8: warning: `services[0].node`: node `vps-1` is not declared in `[[nodes]]` (unless it is added with `steward nodes add`, no agent reports for it); did you mean `vps-01`?"
        ]
    );
    assert_eq!(
        loaded.config.registry.services[0].node.as_deref(),
        Some("vps-1")
    );
    // No suggestion when nothing is close.
    let far = text.replace("vps-1\"", "db-west\"");
    let loaded = parse_str("f.toml", &far, &env).unwrap();
    assert!(
        loaded.warnings[0]
            .message
            .ends_with("no agent reports for it)")
    );
}

#[test]
fn services_may_name_any_node_when_none_is_declared() {
    let loaded = parse_str(
        "f.toml",
        "[[services]]\nname = \"api\"\nnode = \"vps-9\"\n",
        &env,
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

proptest! {
    #[test]
    fn any_id_is_accepted_exactly_when_it_is_a_node_id(id in any::<String>()) {
        let text = format!("[[nodes]]\nid = {}\n", Value::from(id.as_str()));
        match parse_str("f.toml", &text, &env) {
            Ok(loaded) => {
                prop_assert!(check_node_id(&id).is_ok(), "accepted {:?}", id);
                prop_assert_eq!(&loaded.config.nodes[0].id, &id);
            }
            Err(LoadError::Invalid(d)) => {
                prop_assert!(check_node_id(&id).is_err(), "refused {:?}: {}", id, d);
                for diagnostic in d.0 {
                    prop_assert_eq!((diagnostic.line, diagnostic.column), (2, 6), "{}", diagnostic);
                }
            }
            Err(other) => prop_assert!(false, "unexpected {}", other),
        }
    }

    #[test]
    fn node_id_like_text_is_accepted_exactly_when_it_is_a_node_id(id in "[a-z0-9._ /$-]{0,70}") {
        let text = format!("[[nodes]]\nid = {}\n", Value::from(id.as_str()));
        let accepted = parse_str("f.toml", &text, &env).is_ok();
        prop_assert_eq!(accepted, check_node_id(&id).is_ok());
    }
}
