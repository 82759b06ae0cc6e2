#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn problems(text: &str) -> Vec<String> {
    match AgentConfig::parse("agent.toml", text) {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(ConfigError::Invalid(problems)) => problems.0.iter().map(|p| p.to_string()).collect(),
        Err(other) => panic!("expected problems, got {other}"),
    }
}

fn one_problem(text: &str) -> String {
    let all = problems(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

#[test]
fn an_empty_file_means_every_default() {
    let config = AgentConfig::parse("agent.toml", "# nothing yet\n").unwrap();
    assert_eq!(config, AgentConfig::default());
    assert_eq!(config.hub, None);
    assert_eq!(config.interval, Duration::from_secs(10));
    assert_eq!(
        config.inventory.nginx,
        ["/etc/nginx/sites-enabled/*", "/etc/nginx/conf.d/*.conf"]
    );
    assert!(config.inventory.certificates.is_empty());
    assert_eq!(
        config.inventory.docker_socket.as_deref(),
        Some(Path::new("/var/run/docker.sock"))
    );
    assert!(config.inventory.mounts.is_empty());
}

#[test]
fn every_key_is_read() {
    let text = r#"
hub = "https://steward.example.com/"
interval = "30s"

[inventory]
nginx = ["/srv/nginx/*.conf"]
certificates = ["/etc/ssl/app.pem", "/etc/letsencrypt/live/*/fullchain.pem"]
docker_socket = "/run/user/1000/docker.sock"
mounts = ["/", "/var/lib/docker"]
"#;
    let config = AgentConfig::parse("agent.toml", text).unwrap();
    assert_eq!(config.hub.as_deref(), Some("https://steward.example.com"));
    assert_eq!(config.interval, Duration::from_secs(30));
    assert_eq!(config.inventory.nginx, ["/srv/nginx/*.conf"]);
    assert_eq!(
        config.inventory.certificates,
        ["/etc/ssl/app.pem", "/etc/letsencrypt/live/*/fullchain.pem"]
    );
    assert_eq!(
        config.inventory.docker_socket.as_deref(),
        Some(Path::new("/run/user/1000/docker.sock"))
    );
    assert_eq!(config.inventory.mounts, ["/", "/var/lib/docker"]);
}

#[test]
fn docker_can_be_turned_off_but_not_while_naming_a_socket() {
    let off = AgentConfig::parse("agent.toml", "[inventory]\ndocker = false\n").unwrap();
    assert_eq!(off.inventory.docker_socket, None);
    let on = AgentConfig::parse("agent.toml", "[inventory]\ndocker = true\n").unwrap();
    assert_eq!(on.inventory, InventoryConfig::default());
    assert_eq!(
        one_problem("[inventory]\ndocker = false\ndocker_socket = \"/x.sock\"\n"),
        "agent.toml:3:17: error: `inventory.docker_socket` is set but `inventory.docker` is \
         false: remove one"
    );
    assert_eq!(
        one_problem("[inventory]\ndocker = \"no\"\n"),
        "agent.toml:2:10: error: `inventory.docker`: expected true or false, found string"
    );
}

#[test]
fn unknown_keys_are_errors_with_a_suggestion_when_one_is_close() {
    assert_eq!(
        one_problem("intervall = \"10s\"\n"),
        "agent.toml:1:1: error: unknown key `intervall`: did you mean `interval`?"
    );
    assert_eq!(
        one_problem("[inventory]\ncertificate = []\n"),
        "agent.toml:2:1: error: unknown key `inventory.certificate`: did you mean \
         `certificates`?"
    );
    assert_eq!(
        one_problem("colour = \"blue\"\n"),
        "agent.toml:1:1: error: unknown key `colour`: expected one of: hub, interval, inventory, work, \
         executors"
    );
}

#[test]
fn the_hub_must_be_an_http_base_url() {
    let hub = |text: &str| {
        AgentConfig::parse("agent.toml", &format!("hub = \"{text}\"\n"))
            .map(|c| c.hub.unwrap_or_default())
            .map_err(|e| e.to_string())
    };
    assert_eq!(hub("http://10.0.0.1:8710").unwrap(), "http://10.0.0.1:8710");
    assert_eq!(
        hub("https://ops.example.com/steward/").unwrap(),
        "https://ops.example.com/steward"
    );
    assert_eq!(
        hub("ftp://hub").unwrap_err(),
        "agent.toml:1:7: error: `hub`: `ftp://hub`: expected an http:// or https:// URL"
    );
    assert!(hub("hub.example.com").unwrap_err().contains("is not a URL"));
    assert!(
        hub("https://me:secret@hub")
            .unwrap_err()
            .contains("must not hold credentials")
    );
    assert!(hub("https://hub/?x=1").unwrap_err().contains("query"));
    assert_eq!(
        one_problem("hub = 8710\n"),
        "agent.toml:1:7: error: `hub`: expected a string, found integer"
    );
}

#[test]
fn the_interval_is_whole_seconds_from_one_second_to_an_hour() {
    let interval = |text: &str| {
        AgentConfig::parse("agent.toml", &format!("interval = \"{text}\"\n"))
            .map(|c| c.interval)
            .map_err(|e| e.to_string())
    };
    assert_eq!(interval("1s").unwrap(), Duration::from_secs(1));
    assert_eq!(interval("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(interval("1h").unwrap(), Duration::from_secs(3600));
    assert_eq!(
        interval("500ms").unwrap_err(),
        "agent.toml:1:12: error: `interval`: `500ms` is shorter than 1s, the shortest allowed"
    );
    assert!(interval("2h").unwrap_err().contains("longer than 1h"));
    assert!(
        interval("1s 500ms")
            .unwrap_err()
            .contains("not a whole number of seconds")
    );
    assert!(interval("ten").unwrap_err().contains("is not a duration"));
    assert_eq!(
        one_problem("interval = 10\n"),
        "agent.toml:1:12: error: `interval`: expected a string, found integer"
    );
}

#[test]
fn lists_are_checked_entry_by_entry() {
    assert_eq!(
        one_problem("[inventory]\nnginx = \"/etc/nginx/*.conf\"\n"),
        "agent.toml:2:9: error: `inventory.nginx`: expected a list of strings, found string"
    );
    assert_eq!(
        one_problem("[inventory]\nnginx = [\"/ok/*\", 3]\n"),
        "agent.toml:2:19: error: `inventory.nginx[1]`: expected a string, found integer"
    );
    assert!(
        one_problem("[inventory]\nnginx = [\"/etc/[nginx\"]\n").contains("not a valid pattern")
    );
    assert!(one_problem("[inventory]\ncertificates = [\"\"]\n").contains("must not be empty"));
    assert_eq!(
        one_problem("[inventory]\nmounts = [\"/\", \"data\"]\n"),
        "agent.toml:2:16: error: `inventory.mounts[1]`: `data` is not an absolute path"
    );
    // A certificate path without glob characters is a path, whatever else it holds.
    let config = AgentConfig::parse("agent.toml", "[inventory]\ncertificates = [\"/a b.pem\"]\n");
    assert_eq!(config.unwrap().inventory.certificates, ["/a b.pem"]);
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let text = "\
interval = \"0s\"
hub = \"gopher://x\"

[inventory]
mounts = [\"rel\"]
dockr = true
";
    let all = problems(text);
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(all[0].starts_with("agent.toml:1:12: error: `interval`"));
    assert!(all[1].starts_with("agent.toml:2:7: error: `hub`"));
    assert!(all[2].starts_with("agent.toml:5:11: error: `inventory.mounts[0]`"));
    assert!(all[3].starts_with("agent.toml:6:1: error: unknown key `inventory.dockr`"));
    assert!(all[3].ends_with("did you mean `docker`?"));
}

#[test]
fn invalid_toml_is_reported_where_it_breaks() {
    let problem = one_problem("hub = \"http://x\"\ninterval = \n");
    assert!(problem.starts_with("agent.toml:2:"), "{problem}");
    assert!(problem.contains("invalid TOML"), "{problem}");
    let problem = one_problem("inventory = 3\n");
    assert_eq!(
        problem,
        "agent.toml:1:13: error: `inventory`: expected a table, found integer"
    );
}

#[test]
fn a_file_resolves_relative_paths_against_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf[1]");
    std::fs::create_dir(&conf).unwrap();
    let path = conf.join("agent.toml");
    std::fs::write(
        &path,
        "[inventory]\nnginx = [\"nginx/*.conf\", \"/abs/*.conf\"]\n\
         certificates = [\"certs/app.pem\", \"certs/*.pem\"]\ndocker_socket = \"docker.sock\"\n",
    )
    .unwrap();
    let config = AgentConfig::load(&path).unwrap();
    let escaped = glob::Pattern::escape(&conf.to_string_lossy());
    assert_eq!(
        config.inventory.nginx,
        [format!("{escaped}/nginx/*.conf"), "/abs/*.conf".to_owned()]
    );
    assert_eq!(
        config.inventory.certificates,
        [
            format!("{escaped}/certs/app.pem"),
            format!("{escaped}/certs/*.pem")
        ]
    );
    assert_eq!(
        config.inventory.docker_socket,
        Some(conf.join("docker.sock"))
    );
    // The escaped pattern still matches the file under the bracketed directory.
    std::fs::create_dir(conf.join("nginx")).unwrap();
    std::fs::write(conf.join("nginx/a.conf"), "").unwrap();
    let matched: Vec<_> = glob::glob(&config.inventory.nginx[0])
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(matched, [conf.join("nginx/a.conf")]);
}

#[test]
fn a_missing_file_is_told_apart_from_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = AgentConfig::load(&dir.path().join("agent.toml")).unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"hub = \"http://x\"\n# \xff\n").unwrap();
    let error = AgentConfig::load(&bad).unwrap_err();
    assert!(!error.is_not_found());
    assert_eq!(
        error.to_string(),
        format!("{}:2:3: error: the file is not valid UTF-8", bad.display())
    );
    let error = AgentConfig::load(dir.path()).unwrap_err();
    assert!(!error.is_not_found());
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

#[test]
fn hub_urls_from_flags_are_checked_like_the_file() {
    assert_eq!(
        parse_hub_url("http://127.0.0.1:8710/").unwrap(),
        "http://127.0.0.1:8710"
    );
    assert!(parse_hub_url("127.0.0.1:8710").is_err());
}

#[test]
fn the_vsa_example_reads_its_two_vhosts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vsa/agent.toml");
    let config = AgentConfig::load(&path).unwrap();
    assert_eq!(config.hub.as_deref(), Some("http://127.0.0.1:8710"));
    assert_eq!(config.interval, Duration::from_secs(10));
    assert_eq!(config.work.concurrency, 1);
    assert_eq!(
        config.work.kinds(),
        ["noop", "sleep", "reload-nginx", "renew-certs"],
        "the node's allowlist"
    );
    let scan = crate::inventory::nginx::read_domains(&config.inventory.nginx);
    assert!(scan.problems.is_empty(), "{:?}", scan.problems);
    let names: Vec<&str> = scan.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dify.vsa.example.com",
            "vsa.example.com",
            "www.vsa.example.com"
        ]
    );
    let certificate = scan.domains[0].certificate_file.as_deref();
    assert_eq!(
        certificate,
        Some("examples/vsa/certs/dify.vsa.example.com.pem")
    );
    let pem = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(certificate.unwrap());
    let read = crate::inventory::certs::read_certificates(&[pem.display().to_string()]);
    assert_eq!(read[0].error, None);
    assert_eq!(read[0].names, ["dify.vsa.example.com"]);
}

#[test]
fn work_and_executors_are_read_and_checked_in_place() {
    let text = "[work]\nconcurrency = 3\n\n[[executors]]\nname = \"backup\"\ntype = \"shell\"\ncommand = \"/bin/true\"\n";
    let config = AgentConfig::parse("agent.toml", text).unwrap();
    assert_eq!(config.work.concurrency, 3);
    assert!(config.work.enabled());
    assert_eq!(config.work.executors[0].name(), "backup");
    assert!(!AgentConfig::parse("agent.toml", "").unwrap().work.enabled());

    let bad = "[work]\nconcurrency = 0\nparallel = 2\n\n[[executors]]\nname = \"noop\"\ntype = \"shell\"\ncommand = \"/bin/true\"\n\n[[executors]]\nname = \"x\"\ntype = \"http\"\nservice = \"api\"\npath = \"/x\"\n";
    let shown = AgentConfig::parse("agent.toml", bad)
        .unwrap_err()
        .to_string();
    for expected in [
        "agent.toml:2:15: error: `work.concurrency`: expected an integer from 1 to 100",
        "agent.toml:3:1: error: unknown key `work.parallel`",
        "agent.toml:6:8: error: `executors[0].name`: `noop` is a built-in kind",
        "agent.toml:13:11: error: `executors[1].service`: unknown service `api`",
    ] {
        assert!(shown.contains(expected), "{expected} in:\n{shown}");
    }
}
