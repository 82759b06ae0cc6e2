use super::*;
use proptest::prelude::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn relative_paths_resolve_against_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.toml");
    std::fs::write(
        &path,
        "[storage]\ndata_dir = \"state\"\n[audit]\nmirror = \"log/a.jsonl\"\n",
    )
    .unwrap();
    let loaded = load_file(&path, &no_env).unwrap();
    assert_eq!(
        loaded.config.settings.audit_mirror,
        Some(dir.path().join("log/a.jsonl"))
    );
    assert_eq!(
        loaded.config.settings.data_dir,
        Some(dir.path().join("state"))
    );
}

#[test]
fn relative_shell_workdirs_resolve_against_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.toml");
    std::fs::write(
        &path,
        "[[executors]]\nname = \"a\"\ntype = \"shell\"\ncommand = \"true\"\nworkdir = \"jobs\"\n[[executors]]\nname = \"b\"\ntype = \"shell\"\ncommand = \"true\"\nworkdir = \"/srv\"\n",
    )
    .unwrap();
    let loaded = load_file(&path, &no_env).unwrap();
    let workdirs: Vec<_> = loaded
        .config
        .executors
        .iter()
        .map(|e| match e {
            ExecutorSpec::Shell(s) => s.workdir.clone(),
            ExecutorSpec::Http(_) => None,
        })
        .collect();
    assert_eq!(
        workdirs,
        [Some(dir.path().join("jobs")), Some(PathBuf::from("/srv"))]
    );
}

#[test]
fn values_from_the_environment_stay_templates_in_the_registry() {
    let env = |name: &str| (name == "PW").then(|| "hunter2".to_owned());
    let text = "[storage]\ndatabase = \"postgres://u:${PW}@db/s\"\n[[workspaces]]\nkey = \"a\"\nowner = \"$${literal}\"\nlabels = { token = \"${PW}\" }\n[[services]]\nname = \"s\"\nurl = \"http://u:${PW}@host/\"\n";
    let loaded = parse_str("f.toml", text, &env).unwrap();
    let registry = &loaded.config.registry;
    assert_eq!(
        registry.services[0].url.as_deref(),
        Some("http://u:${PW}@host/")
    );
    assert_eq!(registry.workspaces[0].labels["token"], "${PW}");
    assert_eq!(registry.workspaces[0].owner.as_deref(), Some("${literal}"));
    let database = loaded.config.settings.database.as_ref().unwrap();
    assert_eq!(
        database.expose(),
        "postgres://u:hunter2@db/s",
        "settings get the value"
    );
    let debug = format!("{:?}", loaded.config);
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn errors_about_values_from_the_environment_quote_the_reference_not_the_value() {
    let env = |name: &str| (name == "URL").then(|| "https://user:hunter2@/x".to_owned());
    let text = "[[services]]\nname = \"s\"\nurl = \"${URL}\"\n[[workspaces]]\nkey = \"w\"\nstatus = \"${URL}\"\n";
    let err = parse_str("f.toml", text, &env).unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.contains("`services[0].url`: `${URL}` is not a URL"),
        "{err}"
    );
    assert!(err.contains("`${URL}` is not one of"), "{err}");
}

#[test]
fn names_cannot_come_from_the_environment() {
    let env = |_: &str| Some("a".to_owned());
    let err = parse_str("f.toml", "[[workspaces]]\nkey = \"${X}\"\n", &env).unwrap_err();
    assert!(
        err.to_string()
            .contains("names and references cannot use `${VAR}`"),
        "{err}"
    );
}

#[test]
fn an_unset_variable_in_a_url_is_still_an_error() {
    let err = parse_str(
        "f.toml",
        "[[services]]\nname = \"s\"\nurl = \"${NOPE}\"\n",
        &no_env,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("environment variable `NOPE` is not set"),
        "{err}"
    );
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.toml");
    crate::test_support::mkfifo(&path);
    let name = path.display().to_string();
    let err = crate::test_support::within_seconds(move || load_file(&path, &no_env)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{name}: not a regular file (a FIFO)")
    );
}

#[test]
fn nul_characters_are_refused_with_their_field() {
    let err = parse_str(
        "f.toml",
        "[[workspaces]]\nkey = \"a\"\nowner = \"x\\u0000y\"\n",
        &no_env,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("f.toml:3:9: error: `workspaces[0].owner`: must not contain a NUL character"),
        "{err}"
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let text = "[[workspaces]]\nkey = \"a b\"\n[[services]]\nname = \"s\"\nworkspace = \"nope\"\nurl = \"::\"\n[bogus]\n";
    let err = parse_str("f.toml", text, &no_env).unwrap_err();
    let lines: Vec<(usize, usize)> = err
        .diagnostics()
        .unwrap()
        .0
        .iter()
        .map(|d| (d.line, d.column))
        .collect();
    assert_eq!(lines, vec![(2, 7), (5, 13), (6, 7), (7, 2)], "{err}");
}

/// Keys and values a config is made of, shuffled into arbitrary documents.
fn config_like_text() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "[[workspaces]]\n",
        "[[services]]\n",
        "[[dependencies]]\n",
        "[server]\n",
        "[storage]\n",
        "key = \"a\"\n",
        "key = 1\n",
        "name = \"s\"\n",
        "from = \"a\"\n",
        "to = \"b\"\n",
        "type = \"t\"\n",
        "labels = { x = 1 }\n",
        "labels = \"no\"\n",
        "url = \"http://x\"\n",
        "listen = \"nope\"\n",
        "status = \"paused\"\n",
        "repo = [1]\n",
        "owner = \"${UNSET}\"\n",
        "= \n",
        "[[\n",
        "\"\n",
        "x.y.z = {}\n",
        "[[queues]]\n",
        "[[executors]]\n",
        "kinds = [\"noop\", \"s\"]\n",
        "type = \"shell\"\n",
        "type = \"http\"\n",
        "command = \"run\"\n",
        "args = [\"{a}\", \"{b\"]\n",
        "params = { a = \"[a-z]+\", b = \"(\" }\n",
        "headers = { X-A = \"${UNSET}\", \"a b\" = 1 }\n",
        "service = \"s\"\n",
        "path = \"p\"\n",
        "timeout = \"0s\"\n",
        "lease = \"5m\"\n",
        "backoff_cap = \"1ms\"\n",
        "retention = \"forever\"\n",
        "[[schedules]]\n",
        "[[heartbeats]]\n",
        "[scheduler]\n",
        "cron = \"0 25 * * *\"\n",
        "cron = \"*/5 * * * *\"\n",
        "every = \"1s\"\n",
        "at = 2026-01-01T00:00:00Z\n",
        "timezone = \"Europe/Berln\"\n",
        "queue = \"s\"\n",
        "kind = \"noop\"\n",
        "missed = \"all\"\n",
        "missed_limit = 3\n",
        "jitter = \"2s\"\n",
        "period = \"1m\"\n",
        "grace = \"1s\"\n",
        "payload = { a = nan, b = [1, { c = 2 }] }\n",
        "[schedules.payload]\n",
        "[[checks]]\n",
        "[health]\n",
        "keep_results = \"2h\"\n",
        "keep_rollups = \"1h\"\n",
        "check_service_urls = false\n",
        "service = \"nn\"\n",
        "type = \"tcp\"\n",
        "type = \"cert_file\"\n",
        "address = \"h\"\n",
        "paths = [\"/x/[\", \"\"]\n",
        "conditions = [\"[STATUS] == 200\", \"[STATU]\"]\n",
        "expect_status = [200]\n",
        "interval = \"5s\"\n",
        "[alerting]\n",
        "resolve_timeout = \"1s\"\n",
        "[[alerting.receivers]]\n",
        "type = \"webhook\"\n",
        "type = \"telegram\"\n",
        "chat_id = 1\n",
        "to = [\"a@b\", \"x\"]\n",
        "[alerting.route]\n",
        "[[alerting.route.routes]]\n",
        "receiver = \"s\"\n",
        "matchers = [\"a=b\", \"c=~(\"]\n",
        "group_by = [\"...\", \"a\"]\n",
        "continue = true\n",
        "remediate = { queue = \"s\", kind = \"noop\" }\n",
        "[[alerting.inhibit_rules]]\n",
        "source_matchers = [\"a=b\"]\n",
        "equal = [\"a-b\"]\n",
    ]);
    prop::collection::vec(token, 0..30).prop_map(|tokens| tokens.concat())
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,300}") {
        let _ = parse_str("f.toml", &text, &no_env);
    }

    #[test]
    fn config_like_documents_are_accepted_or_rejected_with_located_errors(text in config_like_text()) {
        match parse_str("f.toml", &text, &no_env) {
            Ok(_) => {}
            Err(LoadError::Empty { .. }) => prop_assert!(text.trim().is_empty()),
            Err(LoadError::Invalid(d)) => {
                prop_assert!(d.has_errors());
                let line_count = text.lines().count().max(1);
                for diagnostic in d.0 {
                    prop_assert!(diagnostic.line >= 1 && diagnostic.line <= line_count + 1, "{diagnostic}");
                    prop_assert!(diagnostic.column >= 1);
                }
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }
}
