use super::*;
use proptest::prelude::*;

fn loc(path: &str, upstream: Option<&str>) -> Location {
    Location {
        path: path.to_owned(),
        upstream: upstream.map(str::to_owned),
    }
}

fn parse(text: &str) -> Vec<Domain> {
    parse_vhosts(text, "site.conf").unwrap_or_else(|e| panic!("{e}"))
}

fn names(domains: &[Domain]) -> Vec<&str> {
    domains.iter().map(|d| d.name.as_str()).collect()
}

const SITE: &str = r#"
# Managed by hand. Upstreams first: their `server` lines are not virtual hosts.
upstream app_backend {
    least_conn;
    server 127.0.0.1:8080 max_fails=3;
    server 127.0.0.1:8081 backup;
}

map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}

server {
    listen 80;
    listen [::]:80;
    server_name example.org www.example.org;   # both names redirect
    location /.well-known/acme-challenge/ { root /var/www/acme; }
    location / {
        return 301 https://$host$request_uri;
    }
}

server {
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name example.org;
    server_name www.example.org;

    ssl_certificate     /etc/letsencrypt/live/example.org/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/example.org/privkey.pem;
    add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;

    location / {
        # A comment with braces { and } and a ; in it.
        if ($request_method = POST) {
            proxy_pass http://app_backend;
        }
        proxy_pass http://127.0.0.1:9000;
        proxy_set_header Upgrade $http_upgrade;
    }

    location /api/ {
        limit_except GET POST {
            deny all;
        }
        proxy_pass http://app_backend/api/;
    }

    location ~ \.php$ {
        include fastcgi_params;
        fastcgi_pass unix:/run/php/php8.2-fpm.sock;
    }

    location = /health {
        access_log off;
        return 200 "ok\n";
    }

    location /static/ {
        location ~* "\.(css|js)$" {
            expires 30d;
        }
        root /srv/www;
    }

    location /grpc/ { grpc_pass grpc://127.0.0.1:50051; }
    location @fallback { uwsgi_pass 127.0.0.1:3031; }
}

server {
    listen 8080 default_server;
    server_name _ "";
    return 444;
}
"#;

#[test]
fn a_realistic_site_file_yields_each_server_name_with_its_routes() {
    let domains = parse(SITE);
    assert_eq!(
        names(&domains),
        [
            "example.org",
            "www.example.org",
            "example.org",
            "www.example.org"
        ]
    );

    let plain = &domains[0];
    assert_eq!(plain.listen, ["80", "[::]:80"]);
    assert_eq!(
        plain.locations,
        [loc("/.well-known/acme-challenge/", None), loc("/", None)]
    );
    assert_eq!(plain.certificate_file, None);
    assert_eq!(plain.file, "site.conf");

    let tls = &domains[2];
    assert_eq!(tls.listen, ["443 ssl http2", "[::]:443 ssl http2"]);
    assert_eq!(
        tls.certificate_file.as_deref(),
        Some("/etc/letsencrypt/live/example.org/fullchain.pem")
    );
    assert_eq!(
        tls.locations,
        [
            // The `if` comes first in the block, so its `proxy_pass` is the first one.
            loc("/", Some("http://app_backend")),
            loc("/api/", Some("http://app_backend/api/")),
            loc("~ \\.php$", Some("unix:/run/php/php8.2-fpm.sock")),
            loc("= /health", None),
            loc("/static/", None),
            loc("~* \\.(css|js)$", None),
            loc("/grpc/", Some("grpc://127.0.0.1:50051")),
            loc("@fallback", Some("127.0.0.1:3031")),
        ]
    );
    assert_eq!(domains[3].locations, tls.locations);
}

#[test]
fn server_names_gather_over_directives_without_repeats_or_catch_alls() {
    let domains =
        parse("server { server_name a.test b.test; server_name a.test _ c.test \"\"; listen 80; }");
    assert_eq!(names(&domains), ["a.test", "b.test", "c.test"]);
    assert!(parse("server { listen 80; }").is_empty());
    assert!(parse("server { server_name _; }").is_empty());
}

#[test]
fn quoted_strings_keep_their_separators_and_unescape() {
    let domains = parse(concat!(
        "server {\n",
        "  server_name \"quoted.test\" 'single.test' \"a\\\"b.test\";\n",
        "  add_header X-Note \"semi; brace { } # not a comment\";\n",
        "  add_header X-Single 'it\\'s';\n",
        "  location \"/with space/\" { proxy_pass \"http://b:1/x y\"; }\n",
        "  location ~ \"^/a\\.b$\" { }\n",
        "}\n",
    ));
    assert_eq!(names(&domains), ["quoted.test", "single.test", "a\"b.test"]);
    assert_eq!(
        domains[0].locations,
        [
            loc("/with space/", Some("http://b:1/x y")),
            loc("~ ^/a\\.b$", None)
        ]
    );
}

#[test]
fn a_hash_inside_a_word_and_a_dollar_brace_are_part_of_the_word() {
    let domains = parse(concat!(
        "server { server_name x#y.test; # the rest is a comment }\n",
        "  location / { return 301 https://${host}$request_uri; proxy_pass http://h/${uri}; }\n",
        "}\n",
    ));
    assert_eq!(names(&domains), ["x#y.test"]);
    assert_eq!(domains[0].locations, [loc("/", Some("http://h/${uri}"))]);
}

#[test]
fn nested_locations_are_their_own_entries_with_their_own_upstreams() {
    let domains = parse(
        r"server {
            server_name n.test;
            location /outer/ {
                location /outer/inner/ { proxy_pass http://inner; }
                proxy_pass http://outer;
                proxy_pass http://ignored;
            }
            location /last/ { fastcgi_pass 127.0.0.1:9000; }
        }",
    );
    assert_eq!(
        domains[0].locations,
        [
            loc("/outer/", Some("http://outer")),
            loc("/outer/inner/", Some("http://inner")),
            loc("/last/", Some("127.0.0.1:9000")),
        ]
    );
}

#[test]
fn servers_inside_http_inherit_its_certificate_and_stream_servers_are_skipped() {
    let domains = parse(
        r"http {
            server { server_name own.test; ssl_certificate /own.pem; }
            server { server_name inherited.test; }
            ssl_certificate /http.pem;
        }
        stream {
            server { listen 5432; server_name db.test; proxy_pass 10.0.0.1:5432; }
        }
        mail { server { server_name mail.test; } }",
    );
    assert_eq!(names(&domains), ["own.test", "inherited.test"]);
    assert_eq!(domains[0].certificate_file.as_deref(), Some("/own.pem"));
    assert_eq!(domains[1].certificate_file.as_deref(), Some("/http.pem"));
}

#[test]
fn include_lines_and_unknown_blocks_are_harmless() {
    let domains = parse(
        "include /etc/nginx/snippets/*.conf;\nserver { include snippets/ssl.conf; server_name i.test; }",
    );
    assert_eq!(names(&domains), ["i.test"]);
    assert!(parse("").is_empty());
    assert!(parse("# only a comment").is_empty());
}

fn error_of(text: &str) -> NginxError {
    match parse_vhosts(text, "bad.conf") {
        Ok(domains) => panic!("expected an error, got {domains:?}"),
        Err(error) => error,
    }
}

#[test]
fn an_unclosed_block_names_the_innermost_open_block_and_its_line() {
    let error = error_of("server {\n  server_name a.test;\n  location / {\n    root /x;\n}\n");
    assert!(
        matches!(&error, NginxError::UnclosedBlock { line: 1, name, .. } if name == "server"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "bad.conf:1: the `server` block opened here is never closed"
    );
}

#[test]
fn a_stray_closing_brace_is_reported_on_its_line() {
    let error = error_of("server {\n  listen 80;\n}\n}\n");
    assert!(
        matches!(error, NginxError::UnexpectedClose { line: 4, .. }),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "bad.conf:4: `}` closes no block");
}

#[test]
fn an_unterminated_string_is_reported_where_it_opens() {
    let error = error_of("server {\n  server_name \"a.test;\n}\n\n");
    assert!(
        matches!(error, NginxError::UnterminatedString { line: 2, .. }),
        "{error:?}"
    );
    let error = error_of("server { return 200 'ends in a backslash\\");
    assert!(
        matches!(error, NginxError::UnterminatedString { line: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn a_missing_semicolon_names_the_directive() {
    let error = error_of("server {\n  listen 80\n}\n");
    assert_eq!(
        error.to_string(),
        "bad.conf:2: the `listen` directive has no `;` before `}`"
    );
    let error = error_of("server { listen 80; }\nworker_processes\n  auto");
    assert_eq!(
        error.to_string(),
        "bad.conf:2: the `worker_processes` directive has no `;` before the end of the file"
    );
}

#[test]
fn misplaced_tokens_are_unexpected() {
    for (text, line, what) in [
        ("server {\n ; }", 2, "`;`"),
        ("\n\n{ }", 3, "`{`"),
        (
            "server { server_name \"a\"b; }",
            1,
            "`b` right after a quoted string",
        ),
    ] {
        let error = error_of(text);
        match &error {
            NginxError::Unexpected {
                line: l, what: w, ..
            } => {
                assert_eq!(*l, line, "{text:?}");
                assert!(w.contains(what), "{text:?}: {w}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    // A quoted string may be closed by `)`, as in an `if` condition.
    let domains = parse(
        "server { server_name c.test; location / { if ($uri ~ \"x\") { proxy_pass http://c; } } }",
    );
    assert_eq!(domains[0].locations, [loc("/", Some("http://c"))]);
}

#[test]
fn nesting_deeper_than_the_bound_is_refused() {
    let fits = format!("{}{}", "a {".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
    assert!(parse(&fits).is_empty());
    let deep = format!(
        "{}{}",
        "a {\n".repeat(MAX_DEPTH + 1),
        "}".repeat(MAX_DEPTH + 1)
    );
    let error = error_of(&deep);
    assert!(
        matches!(error, NginxError::TooDeep { line, .. } if line == MAX_DEPTH + 1),
        "{error:?}"
    );
}

#[test]
fn a_scan_reads_every_file_once_merges_blocks_and_keeps_going_past_problems() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("b.conf"),
        "server { listen 80; server_name shared.test b.test; location / { return 301 https://$host; } }\n\
         server { listen 443 ssl; server_name shared.test; ssl_certificate /b.pem;\n\
                  location / { proxy_pass http://b; } }\n",
    )
    .unwrap();
    std::fs::write(
        root.join("a.conf"),
        "server { listen 80; server_name shared.test; }",
    )
    .unwrap();
    std::fs::write(
        root.join("broken.conf"),
        "server {\n  server_name lost.test;\n",
    )
    .unwrap();
    std::fs::create_dir(root.join("dir.conf")).unwrap();
    let fifo = root.join("fifo.conf");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());

    let all = format!("{}/*.conf", root.display());
    let one = root.join("a.conf").display().to_string();
    let scan = read_domains(&[
        all,
        one,
        "[".to_owned(),
        format!("{}/none-*", root.display()),
    ]);

    let a = root.join("a.conf").display().to_string();
    let b = root.join("b.conf").display().to_string();
    let keys: Vec<(&str, &str)> = scan
        .domains
        .iter()
        .map(|d| (d.name.as_str(), d.file.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("b.test", b.as_str()),
            ("shared.test", a.as_str()),
            ("shared.test", b.as_str())
        ]
    );
    let merged = &scan.domains[2];
    assert_eq!(merged.listen, ["80", "443 ssl"]);
    assert_eq!(
        merged.locations,
        [loc("/", None), loc("/", Some("http://b"))]
    );
    assert_eq!(merged.certificate_file.as_deref(), Some("/b.pem"));

    let problems: Vec<String> = scan.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("pattern `[`"), "{problems:#?}");
    assert!(
        problems[1].ends_with("broken.conf:1: the `server` block opened here is never closed"),
        "{problems:#?}"
    );
    assert!(problems[2].contains("a FIFO"), "{problems:#?}");
}

/// A location the generator writes: its path, an upstream, and locations nested in it.
#[derive(Debug, Clone)]
struct GenLocation {
    path: String,
    upstream: Option<(&'static str, String)>,
    pass_first: bool,
    children: Vec<GenLocation>,
}

#[derive(Debug, Clone)]
struct GenServer {
    names: Vec<String>,
    listen: Vec<String>,
    locations: Vec<GenLocation>,
    quote_names: bool,
}

fn path_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-z0-9_]{0,6}/?",
        "= /[a-z]{1,6}",
        "\\^~ /[a-z]{1,6}/",
        "~\\*? \\\\\\.[a-z]{2,4}\\$",
        "@[a-z]{1,6}",
    ]
}

fn upstream_strategy() -> impl Strategy<Value = Option<(&'static str, String)>> {
    proptest::option::of((
        prop::sample::select(PASS_DIRECTIVES),
        "(http://[a-z]{1,8}(:[0-9]{2,4})?/?|unix:/run/[a-z]{1,6}\\.sock)",
    ))
}

fn location_strategy() -> impl Strategy<Value = GenLocation> {
    let leaf = (path_strategy(), upstream_strategy(), any::<bool>()).prop_map(
        |(path, upstream, pass_first)| GenLocation {
            path,
            upstream,
            pass_first,
            children: Vec::new(),
        },
    );
    leaf.prop_recursive(2, 8, 3, |inner| {
        (
            path_strategy(),
            upstream_strategy(),
            any::<bool>(),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(path, upstream, pass_first, children)| GenLocation {
                path,
                upstream,
                pass_first,
                children,
            })
    })
}

fn server_strategy() -> impl Strategy<Value = GenServer> {
    (
        prop::collection::btree_set("[a-z][a-z0-9-]{0,8}(\\.[a-z]{2,5}){1,2}", 1..4),
        prop::collection::vec(
            "(80|443 ssl|\\[::\\]:443 ssl http2|127\\.0\\.0\\.1:8080)",
            0..3,
        ),
        prop::collection::vec(location_strategy(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(names, listen, locations, quote_names)| GenServer {
            names: names.into_iter().collect(),
            listen,
            locations,
            quote_names,
        })
}

fn render_location(location: &GenLocation, out: &mut String) {
    out.push_str(&format!("  location {} {{ # opens\n", location.path));
    let pass = location
        .upstream
        .as_ref()
        .map(|(directive, target)| format!("    {directive} \"{target}\";\n"));
    if location.pass_first
        && let Some(pass) = &pass
    {
        out.push_str(pass);
    }
    for child in &location.children {
        render_location(child, out);
    }
    if !location.pass_first
        && let Some(pass) = &pass
    {
        out.push_str(pass);
    }
    out.push_str("  }\n");
}

fn render(servers: &[GenServer]) -> String {
    let mut out = String::from("# generated\nupstream pool { server 10.0.0.1:80; }\n");
    for server in servers {
        out.push_str("server {\n");
        for listen in &server.listen {
            out.push_str(&format!("  listen {listen};\n"));
        }
        let names: Vec<String> = server
            .names
            .iter()
            .map(|n| {
                if server.quote_names {
                    format!("'{n}'")
                } else {
                    n.clone()
                }
            })
            .collect();
        out.push_str(&format!("  server_name {}; # names\n", names.join(" ")));
        for location in &server.locations {
            render_location(location, &mut out);
        }
        out.push_str("}\n");
    }
    out
}

fn expected_locations(locations: &[GenLocation], out: &mut Vec<Location>) {
    for location in locations {
        out.push(Location {
            path: location.path.clone(),
            upstream: location.upstream.as_ref().map(|(_, target)| target.clone()),
        });
        expected_locations(&location.children, out);
    }
}

proptest! {
    #[test]
    fn the_parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = parse_vhosts(&text, "any.conf");
    }

    #[test]
    fn the_parser_never_panics_on_config_shaped_text(
        pieces in prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec![
                    "server", "location", "proxy_pass", "server_name", "upstream", "if", "{",
                    "}", ";", "\"", "'", "\\", "#", "\n", " ", "$", ")",
                ])
                .prop_map(str::to_owned),
                "[a-z/.:~*^=@]{1,6}",
            ],
            0..120,
        )
    ) {
        let _ = parse_vhosts(&pieces.concat(), "shaped.conf");
    }

    #[test]
    fn a_generated_config_round_trips_its_names_and_locations(
        servers in prop::collection::vec(server_strategy(), 0..4)
    ) {
        let text = render(&servers);
        let parsed = parse_vhosts(&text, "gen.conf")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let mut expected = Vec::new();
        for server in &servers {
            let mut locations = Vec::new();
            expected_locations(&server.locations, &mut locations);
            for name in &server.names {
                expected.push(Domain {
                    name: name.clone(),
                    listen: server.listen.clone(),
                    locations: locations.clone(),
                    file: "gen.conf".to_owned(),
                    certificate_file: None,
                });
            }
        }
        prop_assert_eq!(parsed, expected, "{}", text);
    }
}
