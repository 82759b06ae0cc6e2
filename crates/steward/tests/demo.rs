//! `steward demo` as a newcomer runs it: it prints an address and a key, the dashboard shows
//! the demo's services with work arriving, and stopping it removes everything it made.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::browser::Browser;
use support::{eventually, steward};

#[test]
fn the_demo_serves_a_live_platform_and_cleans_up_after_itself() {
    let mut demo = steward()
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = demo.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut key, mut files) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while files.is_none() {
        assert!(
            Instant::now() < deadline,
            "the demo printed no address within a minute"
        );
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            assert!(demo.try_wait().unwrap().is_none(), "the demo exited");
            continue;
        };
        let line = line.trim();
        if let Some(u) = line.strip_prefix("Dashboard: ") {
            url = Some(u.trim_end_matches('/').to_owned());
        }
        if let Some(k) = line.strip_prefix("API key: ") {
            key = Some(k.trim().to_owned());
        }
        if let Some(f) = line.strip_prefix("Files (database, config, log): ") {
            files = Some(PathBuf::from(f));
        }
    }
    let (url, key, files) = (url.unwrap(), key.unwrap(), files.unwrap());
    assert!(files.join("steward.toml").is_file());

    let mut browser = Browser::new(&url);
    assert_eq!(browser.sign_in(&key).status(), 303);
    let services = browser.page("/services");
    for name in ["site", "gateway", "planner", "model", "warehouse"] {
        assert!(
            services.contains(&format!(">{name}</a>")),
            "{name} is listed"
        );
    }
    // The demo's own services answer: the healthy ones come up, the queue works.
    let client = reqwest::blocking::Client::new();
    let get = |path: &str| -> serde_json::Value {
        client
            .get(format!("{url}{path}"))
            .bearer_auth(&key)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    eventually(Duration::from_secs(30), "the site is up", || {
        get("/api/v1/services")["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "site" && s["checks"][0]["state"] == "up")
    });
    eventually(Duration::from_secs(30), "work arrives and is done", || {
        get("/api/v1/queues")["queues"][0]["counts"]["succeeded"]
            .as_i64()
            .unwrap_or(0)
            > 0
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(demo.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    assert!(!files.exists(), "{} is left behind", files.display());
    assert!(
        client.get(format!("{url}/healthz")).send().is_err(),
        "the demo's Steward is still serving"
    );
}
