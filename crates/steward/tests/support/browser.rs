//! A browser's side of the dashboard over plain HTTP: cookies kept, no redirects followed,
//! HTML asked for, form tokens read from pages.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

/// A browser: keeps cookies, follows no redirects, asks for HTML.
pub struct Browser {
    base: String,
    client: Client,
    /// The cookies held, by name.
    pub cookies: HashMap<String, String>,
    /// Every `Set-Cookie` line the last answer carried.
    pub last_set_cookies: Vec<String>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            last_set_cookies: Vec::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn keep(&mut self, response: &Response) {
        self.last_set_cookies = set_cookies(response.headers());
        for line in &self.last_set_cookies {
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.get_with(path, &[])
    }

    pub fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .client
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .header("cookie", self.cookie_header());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().unwrap();
        self.keep(&response);
        response
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        self.post_with(path, form, &[])
    }

    pub fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .form(form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().unwrap();
        self.keep(&response);
        response
    }

    /// Signs in with `key` through the form, answering the final response of the POST.
    pub fn sign_in(&mut self, key: &str) -> Response {
        let form = self.get("/sign-in").text().unwrap();
        let csrf = hidden(&form, "csrf");
        self.post("/sign-in", &[("key", key), ("csrf", &csrf), ("next", "/")])
    }

    /// The page at `path`, which must answer 200.
    pub fn page(&mut self, path: &str) -> String {
        let response = self.get(path);
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().unwrap()
    }
}

pub fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value of the first hidden input named `name` in `html`.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

pub fn location(response: &Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}
