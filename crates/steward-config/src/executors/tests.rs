use std::path::PathBuf;

use steward_core::Secret;
use steward_core::queue::QueueSpec;
use steward_core::task::RetryPolicy;

use super::*;
use crate::load::parse_str;

use crate::test_support::{assert_error, env, errors, parse};

const FULL: &str = r#"[[services]]
name = "nn"
url = "http://127.0.0.1:8000/"

[[executors]]
name = "reindex"
type = "http"
service = "nn"
path = "/reindex"
method = "PUT"
headers = { Authorization = "Bearer ${TOKEN}", X-Source = "steward" }
success_status = [200, 202]
outcome_field = "outcome"
max_response_bytes = 1024

[[executors]]
name = "hook"
type = "http"
url = "https://hooks.example.com/x"

[[executors]]
name = "backup"
type = "shell"
command = "/usr/bin/pg_dump"
args = ["--dbname={database}", "--format={format}", "{database}.dump"]
params = { database = "[a-z_]+", format = "c|p" }
env = { PGPASSWORD = "${TOKEN}" }
workdir = "/var/backups"

[[queues]]
name = "maintenance"
kinds = ["backup", "reindex", "noop"]
concurrency = 2
rate_limit = 5
max_attempts = 3
backoff_base = "500ms"
backoff_cap = "1m"
timeout = "2h"
lease = "10s"
max_payload_bytes = 4096
retention = "forever"

[[queues]]
name = "default"
kinds = ["sleep"]
"#;

#[test]
fn a_full_example_parses_into_queues_and_executors() {
    let config = parse(FULL);
    let maintenance = QueueSpec {
        name: "maintenance".into(),
        kinds: vec!["backup".into(), "reindex".into(), "noop".into()],
        concurrency: 2,
        rate_limit: Some(5),
        retry: RetryPolicy {
            max_attempts: 3,
            base_ms: 500,
            cap_ms: 60_000,
        },
        timeout_ms: 2 * 3600 * 1000,
        lease_ms: 10_000,
        max_payload_bytes: 4096,
        retention_ms: None,
        node: None,
    };
    assert_eq!(
        config.queues,
        vec![maintenance, QueueSpec::new("default", &["sleep"])]
    );
    let reindex = ExecutorSpec::Http(HttpSpec {
        name: "reindex".into(),
        method: "PUT".into(),
        target: HttpTarget::Service {
            name: "nn".into(),
            path: "/reindex".into(),
        },
        headers: BTreeMap::from([
            ("Authorization".into(), Secret::new("Bearer hunter2")),
            ("X-Source".into(), Secret::new("steward")),
        ]),
        success_status: vec![200, 202],
        outcome_field: Some("outcome".into()),
        max_response_bytes: 1024,
    });
    let hook = ExecutorSpec::Http(HttpSpec {
        name: "hook".into(),
        method: "POST".into(),
        target: HttpTarget::Url("https://hooks.example.com/x".into()),
        headers: BTreeMap::new(),
        success_status: Vec::new(),
        outcome_field: None,
        max_response_bytes: 65_536,
    });
    let backup = ExecutorSpec::Shell(ShellSpec {
        name: "backup".into(),
        command: "/usr/bin/pg_dump".into(),
        args: vec![
            "--dbname={database}".into(),
            "--format={format}".into(),
            "{database}.dump".into(),
        ],
        params: BTreeMap::from([
            ("database".into(), "[a-z_]+".into()),
            ("format".into(), "c|p".into()),
        ]),
        env: BTreeMap::from([("PGPASSWORD".into(), Secret::new("hunter2"))]),
        workdir: Some(PathBuf::from("/var/backups")),
    });
    assert_eq!(config.executors, vec![reindex, hook, backup]);
}

#[test]
fn secrets_from_the_environment_are_resolved_but_never_printed() {
    let config = parse(FULL);
    let ExecutorSpec::Http(http) = &config.executors[0] else {
        panic!("not http: {:?}", config.executors[0]);
    };
    assert_eq!(http.headers["Authorization"].expose(), "Bearer hunter2");
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    // A refused header value is not quoted either.
    let all = errors(
        "[[executors]]\nname = \"h\"\ntype = \"http\"\nurl = \"http://x\"\nheaders = { X-Token = \"${TOKEN}\\n\" }\n",
    );
    assert!(
        all.contains(
            "`executors[0].headers.X-Token`: a header value may hold only printable ASCII"
        ),
        "{all}"
    );
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn executor_errors_name_the_field_and_line() {
    assert_error(
        "[[executors]]\nname = \"x\"\n",
        1,
        "`executors[0].type`: missing required field (\"http\" or \"shell\")",
    );
    assert_error(
        "[[executors]]\nname = \"x\"\ntype = \"grpc\"\n",
        3,
        "`executors[0].type`: `grpc` is not one of: http, shell",
    );
    assert_error(
        "[[executors]]\ntype = \"shell\"\ncommand = \"true\"\n",
        1,
        "`executors[0].name`: missing required field",
    );
    assert_error(
        "[[executors]]\nname = \"sleep\"\ntype = \"shell\"\ncommand = \"true\"\n",
        2,
        "`executors[0].name`: `sleep` is a built-in kind",
    );
    assert_error(
        "[[executors]]\nname = \"x\"\ntype = \"shell\"\ncommand = \"true\"\n[[executors]]\nname = \"x\"\ntype = \"http\"\nurl = \"http://h\"\n",
        6,
        "`executors[1].name`: duplicate executor `x` (first declared at f.toml:2:8)",
    );
    assert_error(
        "[[executors]]\nname = \"x\"\ntype = \"shell\"\ncommand = \"true\"\nkommand = 1\n",
        5,
        "unknown key `executors[0].kommand`: did you mean `command`?",
    );
}

#[test]
fn http_executor_errors_name_the_field_and_line() {
    let h = "[[services]]\nname = \"nn\"\nurl = \"http://h:1/\"\n[[services]]\nname = \"bare\"\n[[executors]]\nname = \"h\"\ntype = \"http\"\n";
    // Lines 1 to 8 are the prefix; the case starts on line 9.
    let with = |lines: &str| format!("{h}{lines}\n");
    assert_error(
        &with(""),
        6,
        "`executors[0].url`: an http executor needs `url` (a fixed URL) or `service`",
    );
    assert_error(
        &with("url = \"http://x\"\nservice = \"nn\""),
        10,
        "`executors[0].service`: an http executor takes `url` or `service`, not both",
    );
    assert_error(
        &with("url = \"::\""),
        9,
        "`executors[0].url`: `::` is not a URL",
    );
    assert_error(
        &with("url = \"ftp://x/y\""),
        9,
        "`executors[0].url`: `ftp://x/y` is not an http:// or https:// URL",
    );
    assert_error(
        &with("url = \"http://x/?k=${TOKEN}\""),
        9,
        "`executors[0].url`: an executor's url cannot use `${VAR}`",
    );
    assert_error(
        &with("url = \"http://x\"\npath = \"/p\""),
        10,
        "`executors[0].path`: only goes with `service`",
    );
    assert_error(
        &with("service = \"n\""),
        9,
        "`executors[0].service`: unknown service `n`; did you mean `nn`?",
    );
    assert_error(
        &with("service = \"bare\""),
        9,
        "`executors[0].service`: service `bare` has no `url`",
    );
    assert_error(
        &with("service = \"nn\"\npath = \"p\""),
        10,
        "`executors[0].path`: `p` must start with `/`",
    );
    assert_error(
        &with("url = \"http://x\"\nmethod = \"get\""),
        10,
        "`executors[0].method`: `get` is not one of: GET, POST, PUT, PATCH, DELETE",
    );
    assert_error(
        &with("url = \"http://x\"\nheaders = { \"Bad Name\" = \"v\" }"),
        10,
        "`executors[0].headers`: `Bad Name` is not a header name",
    );
    assert_error(
        &with("url = \"http://x\"\nheaders = { X-A = \"1\", x-a = \"2\" }"),
        10,
        "`executors[0].headers.x-a`: duplicate header",
    );
    assert_error(
        &with("url = \"http://x\"\nheaders = { X-A = 1 }"),
        10,
        "`executors[0].headers.X-A`: expected a string",
    );
    assert_error(
        &with("url = \"http://x\"\nheaders = { X-A = \"${NOPE}\" }"),
        10,
        "`executors[0].headers.X-A`: environment variable `NOPE` is not set",
    );
    assert_error(
        &with("url = \"http://x\"\nheaders = \"x\""),
        10,
        "`executors[0].headers`: expected a table of strings",
    );
    assert_error(
        &with("url = \"http://x\"\nsuccess_status = [200, 600]"),
        10,
        "`executors[0].success_status[1]`: 600 is out of range (100 to 599)",
    );
    assert_error(
        &with("url = \"http://x\"\nsuccess_status = 200"),
        10,
        "`executors[0].success_status`: expected an array of integers",
    );
    assert_error(
        &with("url = \"http://x\"\noutcome_field = \"\""),
        10,
        "`executors[0].outcome_field`: must not be empty",
    );
    assert_error(
        &with("url = \"http://x\"\nmax_response_bytes = 16777217"),
        10,
        "`executors[0].max_response_bytes`: 16777217 is out of range (1 to 16777216)",
    );
    assert_error(
        &with("url = \"http://x\"\ncommand = \"true\""),
        10,
        "`executors[0].command`: not a key of `http` executors (it belongs to `type = \"shell\"`)",
    );
}

#[test]
fn an_executor_may_not_use_a_service_url_from_the_environment() {
    assert_error(
        "[[services]]\nname = \"nn\"\nurl = \"http://u:${TOKEN}@h/\"\n[[executors]]\nname = \"h\"\ntype = \"http\"\nservice = \"nn\"\n",
        7,
        "`executors[0].service`: the url of service `nn` uses `${VAR}`",
    );
    // A service whose url was refused is reported once, where the url is.
    let all = errors(
        "[[services]]\nname = \"nn\"\nurl = \"::\"\n[[executors]]\nname = \"h\"\ntype = \"http\"\nservice = \"nn\"\n",
    );
    assert_eq!(all.lines().count(), 1, "{all}");
}

#[test]
fn shell_executor_errors_name_the_field_and_line() {
    let s = "[[executors]]\nname = \"s\"\ntype = \"shell\"\n";
    let with = |lines: &str| format!("{s}{lines}\n");
    assert_error(
        &with(""),
        1,
        "`executors[0].command`: missing required field",
    );
    assert_error(
        &with("command = \"\""),
        4,
        "`executors[0].command`: must not be empty",
    );
    assert_error(
        &with("command = \"pg_dump --all\""),
        4,
        "`executors[0].command`: `pg_dump --all` contains white space",
    );
    assert_error(
        &with("command = \"bin/run\""),
        4,
        "`executors[0].command`: `bin/run` must be an absolute path or a program name",
    );
    assert_error(
        &with("command = \"run\"\nargs = [\"{db\"]"),
        5,
        "`executors[0].args[0]`: unclosed `{` in `{db`",
    );
    assert_error(
        &with("command = \"run\"\nargs = [\"{a{b}\"]"),
        5,
        "`executors[0].args[0]`: unclosed `{`",
    );
    assert_error(
        &with("command = \"run\"\nargs = [\"x\", \"{}\"]"),
        5,
        "`executors[0].args[1]`: empty placeholder `{}`",
    );
    assert_error(
        &with("command = \"run\"\nargs = [\"--db={datbase}\"]\nparams = { database = \"[a-z]+\" }"),
        5,
        "`executors[0].args[0]`: placeholder `{datbase}` is not declared in `params` (add `datbase = \"<pattern>\"`); did you mean `{database}`?",
    );
    assert_error(
        &with("command = \"run\"\nargs = [\"{db}\"]\nparams = { db = \"[a-z\" }"),
        6,
        "`executors[0].params.db`: invalid pattern: unclosed character class",
    );
    assert_error(
        &with("command = \"run\"\nargs = [\"{db}\"]\nparams = { db = \"a)|(.*\" }"),
        6,
        "`executors[0].params.db`: invalid pattern",
    );
    assert_error(
        &with("command = \"run\"\nargs = [\"{db}\"]\nparams = { db = \"\" }"),
        6,
        "`executors[0].params.db`: must not be empty",
    );
    assert_error(
        &with("command = \"run\"\nenv = { 1X = \"v\" }"),
        5,
        "`executors[0].env`: `1X` is not an environment variable name",
    );
    assert_error(
        &with("command = \"run\"\nworkdir = \"\""),
        5,
        "`executors[0].workdir`: must not be empty",
    );
    assert_error(
        &with("command = \"run\"\nurl = \"http://x\""),
        5,
        "`executors[0].url`: not a key of `shell` executors (it belongs to `type = \"http\"`)",
    );
    // A placeholder whose pattern is refused is not reported a second time.
    let all = errors(&with(
        "command = \"run\"\nargs = [\"{db}\"]\nparams = { db = \"(\" }",
    ));
    assert_eq!(all.lines().count(), 1, "{all}");
}

#[test]
fn a_shell_command_cannot_use_variables() {
    let s = "[[executors]]\nname = \"s\"\ntype = \"shell\"\n";
    // Set or not, a reference is refused with the same message.
    for command in ["${UNSET}", "${TOKEN}", "/opt/${TOKEN}/run"] {
        assert_error(
            &format!("{s}command = \"{command}\"\n"),
            4,
            "`executors[0].command`: cannot use `${VAR}`: the program is taken as written",
        );
    }
    let malformed = errors(&format!("{s}command = \"${{oops\"\n"));
    assert!(
        malformed.contains("`executors[0].command`: malformed variable reference"),
        "{malformed}"
    );
    let config = parse(&format!("{s}command = \"/opt/$${{x}}/run\"\n"));
    let ExecutorSpec::Shell(shell) = &config.executors[0] else {
        panic!("not a shell executor");
    };
    assert_eq!(shell.command, "/opt/${x}/run", "`$${{` is a literal `${{`");
}

#[test]
fn a_program_missing_here_is_a_warning_at_its_location() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let other = dir.path().join("other");
    for (path, mode) in [
        (bin.join("tool"), 0o755),
        (bin.join("data"), 0o644),
        (other.join("elsewhere"), 0o755),
    ] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let path_var = format!("/nonexistent:{}", bin.display());
    let env = |name: &str| (name == "PATH").then(|| path_var.clone());
    let shell = |name: &str, lines: &str| {
        format!("[[executors]]\nname = \"{name}\"\ntype = \"shell\"\n{lines}\n")
    };
    let text = [
        shell("found", "command = \"tool\""),
        shell(
            "absolute",
            &format!("command = \"{}\"", bin.join("tool").display()),
        ),
        shell("typo", "command = \"toool\""),
        shell("gone", "command = \"/nonexistent/run\""),
        shell(
            "plain",
            &format!("command = \"{}\"", bin.join("data").display()),
        ),
        shell("dir", &format!("command = \"{}\"", bin.display())),
        shell(
            "own-path",
            &format!(
                "command = \"elsewhere\"\nenv = {{ PATH = \"{}\" }}",
                other.display()
            ),
        ),
    ]
    .concat();
    let loaded = parse_str("f.toml", &text, &env).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "f.toml:12:11: warning: `executors[2].command`: `toool` is not found in PATH (the daemon's PATH may differ)".to_owned(),
            "f.toml:16:11: warning: `executors[3].command`: `/nonexistent/run` does not exist".to_owned(),
            format!("f.toml:20:11: warning: `executors[4].command`: `{}` is not executable", bin.join("data").display()),
            format!("f.toml:24:11: warning: `executors[5].command`: `{}` is not a file", bin.display()),
        ]
    );
    // Without PATH, where a bare name would be found is unknown: nothing is said.
    let loaded = parse_str("f.toml", &shell("typo", "command = \"toool\""), &|_| None).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn an_unused_parameter_is_a_warning() {
    let loaded = parse_str(
        "f.toml",
        "[[executors]]\nname = \"s\"\ntype = \"shell\"\ncommand = \"run\"\nparams = { db = \"[a-z]+\" }\n",
        &env,
    )
    .unwrap();
    assert!(
        loaded.warnings[0]
            .to_string()
            .contains("f.toml:5:12: warning: `executors[0].params.db`: no argument uses `{db}`"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn placeholders_agree_with_the_domain() {
    let args = ["--a={x}-{y}", "{x}", "plain", "}{z}"];
    let spec = ShellSpec {
        name: "s".into(),
        command: "run".into(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        params: BTreeMap::new(),
        env: BTreeMap::new(),
        workdir: None,
    };
    let mut ours: Vec<String> = Vec::new();
    for arg in args {
        for name in arg_placeholders(arg).unwrap() {
            if !ours.contains(&name) {
                ours.push(name);
            }
        }
    }
    assert_eq!(spec.placeholders(), ours);
}
