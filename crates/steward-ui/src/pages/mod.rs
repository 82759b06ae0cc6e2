//! The dashboard's pages, one file each: what a page reads from the API, what it shows, and
//! what its forms ask the API to do.

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod chart;
pub(crate) mod graph;
pub(crate) mod keys;
pub(crate) mod nodes;
pub(crate) mod overview;
pub(crate) mod pipelines;
pub(crate) mod schedules;
pub(crate) mod services;
pub(crate) mod sign_in;
pub(crate) mod tasks;

use axum::Form;
use axum::extract::{FromRequest, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::session::Signed;
use crate::{PageError, Ui};

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

/// A form posted with a request: a missing or malformed field is a bad request. The form's
/// token is the caller's to check (`Signed::check_form`), and a missing one is only empty.
pub(crate) async fn read_form<T: DeserializeOwned>(
    ui: &Ui,
    parts: Parts,
    body: axum::body::Body,
) -> Result<T, PageError> {
    let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), ui)
        .await
        .map_err(|e| PageError::BadRequest(format!("the form was not understood: {e}")))?;
    Ok(form)
}

/// The signed-in caller of a form's request, and the form.
pub(crate) async fn signed_form<T: DeserializeOwned>(
    ui: &Ui,
    request: Request,
) -> Result<(Signed, T), PageError> {
    let (parts, body) = request.into_parts();
    let signed = ui.signed(&parts).await?;
    let form = read_form(ui, parts, body).await?;
    Ok((signed, form))
}

/// A configured duration in the largest whole unit that states it exactly (`30 s`, `7 d`).
pub(crate) fn duration_text(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
    ];
    UNITS
        .iter()
        .find(|(size, _)| ms >= *size && ms.is_multiple_of(*size))
        .map_or_else(
            || format!("{ms} ms"),
            |(size, unit)| format!("{} {unit}", ms / size),
        )
}

/// How long something took: milliseconds below a second, else seconds to a tenth.
pub(crate) fn elapsed_text(ms: i64) -> String {
    if ms.abs() < 1_000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1_000.0)
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
    fn durations_read_in_their_largest_exact_unit() {
        assert_eq!(duration_text(0), "0 ms");
        assert_eq!(duration_text(250), "250 ms");
        assert_eq!(duration_text(30_000), "30 s");
        assert_eq!(duration_text(90_000), "90 s");
        assert_eq!(duration_text(300_000), "5 min");
        assert_eq!(duration_text(7 * 86_400_000), "7 d");
        assert_eq!(elapsed_text(12), "12 ms");
        assert_eq!(elapsed_text(1_250), "1.2 s");
    }

    #[test]
    fn states_rank_worst_first() {
        let mut ranks: Vec<u8> = SERVICE_STATES.iter().map(|s| state_rank(s)).collect();
        let sorted = ranks.clone();
        ranks.sort_unstable();
        assert_eq!(ranks, sorted);
    }
}
