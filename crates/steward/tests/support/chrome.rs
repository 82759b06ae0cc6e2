//! Headless Chromium driven over WebDriver (`chromedriver`), for the dashboard's browser tests.
//! With `STEWARD_UI_SHOTS=DIR`, tests write a screenshot of each page they visit to DIR.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// A headless Chromium session; its driver is killed when dropped.
pub struct Chrome {
    driver: Child,
    /// The WebDriver session.
    pub client: Client,
    /// The dashboard's address.
    pub base: String,
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts `chromedriver` and a headless Chromium. Without them, the test fails under CI
/// (`CI=true`; `scripts/test.sh` installs them) and is skipped, saying so, elsewhere.
pub async fn start(base: &str) -> Option<Chrome> {
    let Ok(driver_path) = which("chromedriver") else {
        let message = "chromedriver is not installed (Debian: chromium chromium-driver; \
                       scripts/test.sh installs them)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("SKIPPED: {message}");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new(driver_path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,1000",
            ]
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => break client,
            Err(e) => {
                assert!(Instant::now() < deadline, "no WebDriver session: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    Some(Chrome {
        driver,
        client,
        base: base.trim_end_matches('/').to_owned(),
    })
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|path| path.is_file())
        })
        .ok_or(())
}

impl Chrome {
    /// Opens `path` of the dashboard.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// Types `text` into the field `locator` finds. A live refresh may replace the page between
    /// finding the field and typing; once typing has begun the refresh waits (the page never
    /// refreshes under a focused field), so the field is found again until the keys land.
    pub async fn type_into(&self, locator: Locator<'_>, text: &str) {
        for attempt in 0..10 {
            let field = self.client.find(locator).await.unwrap();
            match field.send_keys(text).await {
                Ok(()) => return,
                Err(error) if attempt < 9 => {
                    eprintln!("typing into a replaced field, finding it again: {error}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(error) => panic!("cannot type into the field: {error}"),
            }
        }
    }

    /// Signs in through the form with `key`.
    pub async fn sign_in(&self, key: &str) {
        self.open("/sign-in").await;
        let field = self.client.find(Locator::Id("key")).await.unwrap();
        field.send_keys(key).await.unwrap();
        self.client
            .find(Locator::Css("form button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.wait_for(Locator::Css("header .who .key"), "the signed-in header")
            .await;
    }

    /// Waits for an element to exist, up to 15 s.
    pub async fn wait_for(
        &self,
        locator: Locator<'_>,
        what: &str,
    ) -> fantoccini::elements::Element {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(found) = self.client.find(locator).await {
                return found;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` in the page and answers its value.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Writes a screenshot named `name` when `STEWARD_UI_SHOTS` names a folder.
    pub async fn shot(&self, name: &str) {
        let Some(dir) = std::env::var_os("STEWARD_UI_SHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}
