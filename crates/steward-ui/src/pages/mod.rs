//! The dashboard's pages, one file each: what a page reads from the API, what it shows, and
//! what its forms ask the API to do.

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod graph;
pub(crate) mod keys;
pub(crate) mod overview;
pub(crate) mod schedules;
pub(crate) mod services;
pub(crate) mod sign_in;
pub(crate) mod tasks;

use axum::http::HeaderMap;
use axum::http::header;

/// Whether a request asks for a page rather than JSON: browsers list `text/html` first.
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// A service state's rank, worst first, for sorting rows that need attention to the top.
pub(crate) fn state_rank(state: &str) -> u8 {
    match state {
        "down" => 0,
        "impacted" => 1,
        "degraded" => 2,
        "unknown" => 3,
        "up" => 4,
        _ => 5,
    }
}

/// Every service state, worst first.
pub(crate) const SERVICE_STATES: [&str; 5] = ["down", "impacted", "degraded", "unknown", "up"];

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn browsers_want_html_and_clients_do_not() {
        let mut headers = HeaderMap::new();
        assert!(!wants_html(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_html(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(wants_html(&headers));
    }

    #[test]
    fn states_rank_worst_first() {
        let mut ranks: Vec<u8> = SERVICE_STATES.iter().map(|s| state_rank(s)).collect();
        let sorted = ranks.clone();
        ranks.sort_unstable();
        assert_eq!(ranks, sorted);
    }
}
