//! Status badges: a service's state and its uptime as small SVG images, like Gatus's and
//! Uptime Kuma's, for READMEs and status pages. They need a viewer key unless
//! `ui.public_badges` opens them (see [`crate::routes::access_of`]).

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use steward_engine::prober::ops::{self, HealthOpsError};
use steward_store::now_ms;
use steward_wire::health::WindowQuery;

use crate::caller::Caller;
use crate::extract::{ApiPath, ApiQuery};
use crate::health::{ops_error, stored_registry, window};
use crate::{ApiError, AppState};

/// Width of one character of the badge's 11 px Verdana, on average.
const CHAR_WIDTH: f64 = 6.8;
/// Padding on each side of each half.
const PAD: f64 = 6.0;

/// `GET /badge/service/{name}.svg`: the service's state.
pub(crate) async fn state(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    ApiPath(file): ApiPath<String>,
) -> Result<Response, ApiError> {
    let name = file
        .strip_suffix(".svg")
        .ok_or_else(|| unknown(&file))?
        .to_owned();
    let registry = stored_registry(&state).await?;
    let config = state.control.config();
    visible(&config, caller.as_ref().map(|c| &c.0), &name)?;
    let views = ops::services(state.control.store().as_ref(), &config, &registry)
        .await
        .map_err(ops_error)?;
    let service_state = registry
        .services
        .iter()
        .zip(views)
        .find(|(service, _)| service.name == name)
        .map(|(_, view)| view.state.as_str())
        .ok_or_else(|| unknown(&name))?;
    Ok(svg(&name, service_state, state_colour(service_state)))
}

/// `GET /badge/service/{name}/uptime.svg?window=24h`: the share of the service's probes that
/// passed over the window.
pub(crate) async fn uptime(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<WindowQuery>,
) -> Result<Response, ApiError> {
    let text = query.window.as_deref().unwrap_or("24h");
    let window_ms = window(Some(text))?;
    let config = state.control.config();
    visible(&config, caller.as_ref().map(|c| &c.0), &name)?;
    let checks = ops::checks_of(
        state.control.store().as_ref(),
        &config,
        &name,
        window_ms,
        now_ms(),
    )
    .await
    .map_err(ops_error)?;
    let (probes, failures) = checks.iter().fold((0_u64, 0_u64), |(p, f), check| {
        (p + check.latency.count, f + check.latency.failures)
    });
    let label = format!("uptime {text}");
    let response = match uptime_percent(probes, failures) {
        Some(percent) => svg(&label, &format_percent(percent), uptime_colour(percent)),
        None => svg(&label, "no data", GREY),
    };
    Ok(response)
}

/// Refuses a service the caller may not see as if it did not exist; a public badge (no
/// caller) may show any service.
fn visible(
    config: &steward_config::Config,
    caller: Option<&Caller>,
    name: &str,
) -> Result<(), ApiError> {
    let seen =
        config.registry.services.iter().any(|s| {
            s.name == name && caller.is_none_or(|c| c.principal.sees(s.workspace.as_deref()))
        });
    if seen { Ok(()) } else { Err(unknown(name)) }
}

fn unknown(name: &str) -> ApiError {
    ops_error(HealthOpsError::UnknownService(name.to_owned()))
}

/// Passed probes over all probes, in percent; `None` without probes.
fn uptime_percent(probes: u64, failures: u64) -> Option<f64> {
    (probes > 0).then(|| 100.0 * (probes - failures.min(probes)) as f64 / probes as f64)
}

/// A percentage as people read it: no more digits than it needs, never rounded up to 100.
fn format_percent(percent: f64) -> String {
    if percent >= 100.0 {
        return "100%".to_owned();
    }
    let two = (percent * 100.0).floor() / 100.0;
    let text = format!("{two:.2}");
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

const GREEN: &str = "#2e7d32";
const YELLOW: &str = "#b58900";
const ORANGE: &str = "#d35400";
const RED: &str = "#c62828";
const PURPLE: &str = "#7b3fa0";
const GREY: &str = "#616161";

fn state_colour(state: &str) -> &'static str {
    match state {
        "up" => GREEN,
        "degraded" => YELLOW,
        "down" => RED,
        "impacted" => PURPLE,
        _ => GREY,
    }
}

fn uptime_colour(percent: f64) -> &'static str {
    match percent {
        p if p >= 99.9 => GREEN,
        p if p >= 99.0 => YELLOW,
        p if p >= 95.0 => ORANGE,
        _ => RED,
    }
}

/// A two-part badge, `label | message`, the message on `colour`. Text is escaped; the image
/// carries its text for screen readers.
fn svg(label: &str, message: &str, colour: &str) -> Response {
    let width = |text: &str| (text.chars().count() as f64 * CHAR_WIDTH + 2.0 * PAD).round();
    let (left, right) = (width(label), width(message));
    let total = left + right;
    let (label, message) = (escape(label), escape(message));
    let body = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/><g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{mx}" y="14">{message}</text></g></svg>"##,
        lx = left / 2.0,
        mx = left + right / 2.0,
    );
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    // Badges are embedded elsewhere and should show the state now, not a cached one.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, max-age=0"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_as_people_expect() {
        assert_eq!(uptime_percent(0, 0), None);
        assert_eq!(format_percent(uptime_percent(1000, 0).unwrap()), "100%");
        assert_eq!(format_percent(uptime_percent(10_000, 1).unwrap()), "99.99%");
        assert_eq!(format_percent(uptime_percent(3, 1).unwrap()), "66.66%");
        assert_eq!(format_percent(uptime_percent(2, 1).unwrap()), "50%");
        // Never shown as 100 % while a probe failed.
        assert_eq!(
            format_percent(uptime_percent(1_000_000, 1).unwrap()),
            "99.99%"
        );
        assert_eq!(uptime_colour(100.0), GREEN);
        assert_eq!(uptime_colour(94.0), RED);
    }

    #[test]
    fn badge_text_is_escaped() {
        assert_eq!(escape("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
    }
}
