//! Alertmanager's API v2 over Steward's alerts and silences, so that `amtool`, Grafana's
//! Alertmanager data source and other Alertmanager clients work unchanged: the firing alerts
//! (alone or in their notification groups) with what mutes them, silences, and a status.
//!
//! The handlers share the `/api/v1` handlers' rules through [`crate::alerts`]: a scoped key sees
//! only its workspace's alerts and silences, a silence is validated, pinned, stored, audited and
//! announced the same way, and muting is the dispatcher's own
//! ([`steward_engine::alerting::muting`]).
//!
//! Where Alertmanager and Steward differ:
//! - silence ids are Steward's numbers, as strings; an id that is not one is not found;
//! - a silence's `createdBy` is the key that created it, whatever the body says;
//! - posting a silence with the `id` of an existing one expires that one and creates another
//!   (Alertmanager updates some in place), answering the new id;
//! - an alert a maintenance window mutes is `suppressed` with no silence id, and counts as
//!   silenced for the `silenced` filter; one held back because a service it depends on is down
//!   is inhibited by that service's firing alerts;
//! - an alert no route takes (no `[alerting.route]`) has no receivers, and is grouped under a
//!   receiver with an empty name.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use regex::Regex;
use steward_core::alert::route::{Destination, MatchOp, Matcher, MatcherError};
use steward_engine::alerting::muting::{Mutes, Muting, impacted_services};
use steward_store::alerts::{EXTERNAL_SOURCE, MAX_ALERT_PAGE};
use steward_store::{Store, StoredAlert, StoredSilence, now_ms};
use steward_wire::alertmanager::{
    AlertGroup, AlertState, AlertStatus, AlertmanagerConfig, AlertmanagerStatus, AlertsQuery,
    ClusterState, ClusterStatus, GettableAlert, GettableSilence, LabelSet, PostableSilence,
    PostedSilence, Receiver, SilenceState, SilenceStatus, SilencesQuery, VersionInfo,
};
use steward_wire::time::{parse_rfc3339, rfc3339};
use utoipa::openapi::path::Parameter;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};

use crate::alerts::{
    end_silence, new_silence, no_silence, store_silence, visible, visible_silence, visible_silences,
};
use crate::caller::Caller;
use crate::describe::query_param;
use crate::error::store_error;
use crate::extract::{ApiBody, ApiPath, ApiQuery, parse_body};
use crate::{ApiError, AppState};

/// Go's zero time, which Alertmanager's clients read as "no end": the end of an alert that has
/// none (one a built-in rule raised, resolved by the rule).
const NO_END: &str = "0001-01-01T00:00:00Z";

/// The cluster's name in `/api/v2/status`.
const CLUSTER_NAME: &str = "steward";

/// A query string as its pairs: Alertmanager's `filter` is repeated, which no struct takes.
type Pairs = Vec<(String, String)>;

fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

fn bad_body(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

/// One matcher of a `filter` parameter, read as Alertmanager's own parser reads it: a label
/// name, `=`, `!=`, `=~` or `!~`, and a value, double-quoted or bare, surrounded by any spaces.
/// In the value `\"`, `\\` and `\n` are escapes and any other backslash stays as written (so
/// `=~"host\d+"` means what it says); a quote may only close a quoted value. The regular
/// expression of `=~` and `!~` must compile and is anchored.
fn parse_matcher(text: &str) -> Result<Matcher, MatcherError> {
    let error = |problem: &str| MatcherError {
        text: text.to_owned(),
        problem: problem.to_owned(),
    };
    let trimmed = text.trim();
    let name_len = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(trimmed.len());
    let (name, rest) = trimmed.split_at(name_len);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(error("no label name at its start"));
    }
    let rest = rest.trim_start();
    let (op, raw) = if let Some(v) = rest.strip_prefix("=~") {
        (MatchOp::Regex, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (MatchOp::Equal, v)
    } else if let Some(v) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, v)
    } else if let Some(v) = rest.strip_prefix("!~") {
        (MatchOp::NotRegex, v)
    } else {
        return Err(error("no operator (=, !=, =~ or !~) after the label name"));
    };
    let value = unescape(raw.trim_start()).map_err(error)?;
    Matcher::new(name, op, &value).map_err(|e| error(&e.problem))
}

/// A matcher's value as Alertmanager reads it (see [`parse_matcher`]).
fn unescape(raw: &str) -> Result<String, &'static str> {
    let (body, quoted) = match raw.strip_prefix('"') {
        Some(inner) => match inner.strip_suffix('"') {
            // A closing quote that is itself escaped (`"a\"`) closes nothing.
            Some(body) if !ends_in_escape(body) => (body, true),
            _ => return Err("an unclosed quote"),
        },
        None => (raw, false),
    };
    let mut value = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => value.push('\n'),
                Some(escaped @ ('"' | '\\')) => value.push(escaped),
                Some(other) => {
                    value.push('\\');
                    value.push(other);
                }
                None => value.push('\\'),
            },
            '"' if quoted => return Err("an unescaped quote inside the quoted value"),
            '"' => return Err("a quote in a value not quoted"),
            c => value.push(c),
        }
    }
    Ok(value)
}

/// Whether `body` ends in a backslash that escapes what follows it (an odd run of them).
fn ends_in_escape(body: &str) -> bool {
    body.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
}

/// Every `filter` of a query, parsed.
fn parse_filters(filters: &[String]) -> Result<Vec<Matcher>, ApiError> {
    filters
        .iter()
        .map(|text| parse_matcher(text).map_err(|e| bad_query(format!("`filter`: {e}"))))
        .collect()
}

/// A boolean parameter.
fn flag(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad_query(format!(
            "`{name}`: `{value}` is not true or false"
        ))),
    }
}

/// The query of the alert routes. Parameters Alertmanager does not define are ignored, as
/// Alertmanager ignores them.
fn alerts_query(pairs: Pairs) -> Result<AlertsQuery, ApiError> {
    let mut query = AlertsQuery::default();
    for (name, value) in pairs {
        match name.as_str() {
            "filter" => query.filter.push(value),
            "active" => query.active = flag(&name, &value)?,
            "silenced" => query.silenced = flag(&name, &value)?,
            "inhibited" => query.inhibited = flag(&name, &value)?,
            "unprocessed" => query.unprocessed = flag(&name, &value)?,
            "receiver" => query.receiver = Some(value),
            _ => {}
        }
    }
    Ok(query)
}

/// The query of `GET /api/v2/silences` (other parameters are ignored).
fn silences_query(pairs: Pairs) -> SilencesQuery {
    SilencesQuery {
        filter: pairs
            .into_iter()
            .filter(|(name, _)| name == "filter")
            .map(|(_, value)| value)
            .collect(),
    }
}

/// The query parameters of `GET /api/v2/alerts` and `GET /api/v2/alerts/groups`, for the
/// OpenAPI document (read by [`alerts_query`]).
pub(crate) fn alerts_params() -> Vec<Parameter> {
    let flag = |name: &str, description: &str| {
        query_param(
            name,
            description,
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .default(Some(true.into())),
        )
    };
    vec![
        filter_param("every alert shown must satisfy"),
        flag("active", "Show alerts nothing mutes."),
        flag("silenced", "Show silenced alerts."),
        flag("inhibited", "Show inhibited alerts."),
        flag("unprocessed", "Show alerts not processed yet."),
        query_param(
            "receiver",
            "A regular expression (anchored) one of an alert's receivers must match.",
            ObjectBuilder::new().schema_type(Type::String),
        ),
    ]
}

/// The query parameters of `GET /api/v2/silences`, for the OpenAPI document (read by
/// [`silences_query`]).
pub(crate) fn silences_params() -> Vec<Parameter> {
    vec![filter_param("every silence shown must hold exactly")]
}

/// Alertmanager's repeated `filter` parameter.
fn filter_param(what: &str) -> Parameter {
    query_param(
        "filter",
        &format!(
            "A matcher (`name=\"value\"`, `name=~\"regex\"`, `name!=value`, `name!~regex`) {what}; \
             repeat it for more."
        ),
        ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)),
    )
}

/// The `receiver` parameter as Alertmanager reads it: an anchored regular expression.
fn receiver_filter(query: &AlertsQuery) -> Result<Option<Regex>, ApiError> {
    query
        .receiver
        .as_deref()
        .map(|text| {
            Regex::new(&format!("^(?:{text})$"))
                .map_err(|e| bad_query(format!("`receiver`: not a regular expression: {e}")))
        })
        .transpose()
}

/// Every firing alert, by fingerprint, page by page.
async fn firing_alerts(store: &dyn Store) -> Result<Vec<StoredAlert>, ApiError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .firing_alerts_after(after, MAX_ALERT_PAGE)
            .await
            .map_err(store_error)?;
        let full = page.len() == MAX_ALERT_PAGE as usize;
        after = page.last().map(|a| a.fingerprint);
        all.extend(page);
        if !full || after.is_none() {
            return Ok(all);
        }
    }
}

/// An alert the caller may see and the query lets through, with the routes it takes.
struct Selected {
    alert: GettableAlert,
    destinations: Vec<Destination>,
}

/// Whether the `active`, `silenced` and `inhibited` flags let an alert muted by `mutes` through
/// (Alertmanager's rules; a maintenance window counts as a silence).
fn shown(query: &AlertsQuery, mutes: &Mutes) -> bool {
    let silenced = !mutes.silences.is_empty() || !mutes.windows.is_empty();
    let inhibited = !mutes.inhibitors.is_empty();
    (query.active || silenced || inhibited)
        && (query.silenced || !silenced)
        && (query.inhibited || !inhibited)
}

/// Each receiver once, in route order.
fn receivers(destinations: &[Destination]) -> Vec<Receiver> {
    let mut names: Vec<Receiver> = Vec::with_capacity(destinations.len());
    for destination in destinations {
        if !names.iter().any(|r| r.name == destination.receiver) {
            names.push(Receiver {
                name: destination.receiver.clone(),
            });
        }
    }
    names
}

/// A stored alert in Alertmanager's shape. One posted without an end shows when it resolves
/// unless re-sent (`resolve_timeout` after it was last received), as Alertmanager does.
fn gettable_alert(
    alert: &StoredAlert,
    receivers: Vec<Receiver>,
    mutes: &Mutes,
    resolve_timeout_ms: u64,
) -> GettableAlert {
    let ends_at = match alert.ends_at_ms {
        Some(end) => rfc3339(end),
        None if alert.source == EXTERNAL_SOURCE => rfc3339(
            alert
                .last_received_ms
                .saturating_add(i64::try_from(resolve_timeout_ms).unwrap_or(i64::MAX)),
        ),
        None => NO_END.to_owned(),
    };
    GettableAlert {
        labels: (*alert.labels).clone(),
        annotations: (*alert.annotations).clone(),
        starts_at: rfc3339(alert.starts_at_ms),
        ends_at,
        updated_at: rfc3339(alert.last_received_ms),
        generator_url: alert.generator_url.clone().filter(|url| !url.is_empty()),
        fingerprint: alert.fingerprint.to_string(),
        receivers,
        status: AlertStatus {
            state: if mutes.is_empty() {
                AlertState::Active
            } else {
                AlertState::Suppressed
            },
            silenced_by: mutes.silences.iter().map(ToString::to_string).collect(),
            inhibited_by: mutes.inhibitors.iter().map(ToString::to_string).collect(),
        },
    }
}

/// The firing alerts the caller may see that `query`'s filters and flags let through (the
/// receiver filter is left to the caller: it applies to alerts on one route, to groups on the
/// other), by fingerprint.
async fn select(
    state: &AppState,
    caller: &Caller,
    query: &AlertsQuery,
) -> Result<Vec<Selected>, ApiError> {
    let matchers = parse_filters(&query.filter)?;
    let store = state.control.store();
    let firing = firing_alerts(store.as_ref()).await?;
    if firing.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let config = state.control.config();
    let registry = state.control.registry();
    // Muted as the dispatcher mutes: by every firing alert, seen by the caller or not.
    let muting = Muting::new(
        store.silences(now).await.map_err(store_error)?,
        config.alerting.maintenance.clone(),
        config.alerting.inhibit_rules.clone(),
        impacted_services(store.as_ref(), &config, &registry).await,
    );
    let inhibitors = muting.inhibitors(firing.iter());
    let resolve_timeout_ms = config.alerting.settings.resolve_timeout_ms;
    let mut selected = Vec::new();
    for alert in &firing {
        // Alertmanager lists no alert whose end has passed.
        if !visible(caller, &alert.labels)
            || alert.ends_at_ms.is_some_and(|end| end < now)
            || !matchers.iter().all(|m| m.matches(&alert.labels))
        {
            continue;
        }
        let mutes = muting.explain(alert, now, &inhibitors);
        if !shown(query, &mutes) {
            continue;
        }
        let destinations = config
            .alerting
            .route
            .as_ref()
            .map(|route| route.destinations(&alert.labels))
            .unwrap_or_default();
        selected.push(Selected {
            alert: gettable_alert(alert, receivers(&destinations), &mutes, resolve_timeout_ms),
            destinations,
        });
    }
    tracing::debug!(
        firing = firing.len(),
        selected = selected.len(),
        caller = %caller.principal.name,
        "alerts read through Alertmanager's API"
    );
    Ok(selected)
}

/// `GET /api/v2/alerts`: the firing alerts, by fingerprint.
pub(crate) async fn get_alerts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(pairs): ApiQuery<Pairs>,
) -> Result<Json<Vec<GettableAlert>>, ApiError> {
    let query = alerts_query(pairs)?;
    let receiver = receiver_filter(&query)?;
    let alerts = select(&state, &caller, &query)
        .await?
        .into_iter()
        .map(|s| s.alert)
        .filter(|alert| {
            receiver
                .as_ref()
                .is_none_or(|re| alert.receivers.iter().any(|r| re.is_match(&r.name)))
        })
        .collect();
    Ok(Json(alerts))
}

/// `GET /api/v2/alerts/groups`: the firing alerts in the groups their routes put them in, by
/// group labels, then receiver, then route.
pub(crate) async fn get_alert_groups(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(pairs): ApiQuery<Pairs>,
) -> Result<Json<Vec<AlertGroup>>, ApiError> {
    let query = alerts_query(pairs)?;
    let receiver = receiver_filter(&query)?;
    let takes = |name: &str| receiver.as_ref().is_none_or(|re| re.is_match(name));
    let mut groups: BTreeMap<(LabelSet, String, Vec<usize>), Vec<GettableAlert>> = BTreeMap::new();
    for selected in select(&state, &caller, &query).await? {
        if selected.destinations.is_empty() {
            if takes("") {
                groups
                    .entry((LabelSet::new(), String::new(), Vec::new()))
                    .or_default()
                    .push(selected.alert);
            }
            continue;
        }
        for destination in &selected.destinations {
            if takes(&destination.receiver) {
                let key = (
                    destination.group_by.key(&selected.alert.labels),
                    destination.receiver.clone(),
                    destination.path.clone(),
                );
                groups.entry(key).or_default().push(selected.alert.clone());
            }
        }
    }
    let groups = groups
        .into_iter()
        .map(|((labels, receiver, _), alerts)| AlertGroup {
            labels,
            receiver: Receiver { name: receiver },
            alerts,
        })
        .collect();
    Ok(Json(groups))
}

/// A stored silence in Alertmanager's shape, as it stands at `now_ms`.
fn gettable_silence(silence: &StoredSilence, now_ms: i64) -> GettableSilence {
    GettableSilence {
        id: silence.id.to_string(),
        status: SilenceStatus {
            state: silence_state(silence, now_ms),
        },
        updated_at: rfc3339(silence.created_at_ms),
        matchers: silence
            .matchers
            .iter()
            .map(|m| steward_wire::alertmanager::Matcher {
                name: m.name.clone(),
                value: m.value.clone(),
                is_regex: matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
                is_equal: matches!(m.op, MatchOp::Equal | MatchOp::Regex),
            })
            .collect(),
        starts_at: rfc3339(silence.starts_at_ms),
        ends_at: rfc3339(silence.ends_at_ms),
        created_by: silence.created_by.clone(),
        comment: silence.comment.clone(),
    }
}

fn silence_state(silence: &StoredSilence, now_ms: i64) -> SilenceState {
    if now_ms < silence.starts_at_ms {
        SilenceState::Pending
    } else if now_ms < silence.ends_at_ms {
        SilenceState::Active
    } else {
        SilenceState::Expired
    }
}

/// `GET /api/v2/silences`: every silence kept (ended ones too, until pruned) that holds each
/// `filter` matcher exactly; active ones first (the soonest to end first), then pending (the
/// soonest to start first), then expired (the latest to end first).
pub(crate) async fn get_silences(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(pairs): ApiQuery<Pairs>,
) -> Result<Json<Vec<GettableSilence>>, ApiError> {
    let filters = parse_filters(&silences_query(pairs).filter)?;
    let now = now_ms();
    let mut silences: Vec<StoredSilence> = visible_silences(&state, &caller, i64::MIN)
        .await?
        .into_iter()
        .filter(|s| filters.iter().all(|f| s.matchers.contains(f)))
        .collect();
    silences.sort_by_key(|s| {
        let state = silence_state(s, now);
        let at = match state {
            SilenceState::Active => s.ends_at_ms,
            SilenceState::Pending => s.starts_at_ms,
            SilenceState::Expired => s.ends_at_ms.saturating_neg(),
        };
        (state, at, s.id)
    });
    Ok(Json(
        silences.iter().map(|s| gettable_silence(s, now)).collect(),
    ))
}

/// A silence id in a path or body: Steward's are numbers, so any other text names none.
fn silence_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().map_err(|_| no_silence(text))
}

/// `GET /api/v2/silence/{silenceID}`.
pub(crate) async fn get_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GettableSilence>, ApiError> {
    let silence = visible_silence(&state, &caller, silence_id(&id)?).await?;
    Ok(Json(gettable_silence(&silence, now_ms())))
}

/// `DELETE /api/v2/silence/{silenceID}`: ends it now; 200 with no body, as Alertmanager
/// answers.
pub(crate) async fn delete_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    end_silence(&state, &caller, silence_id(&id)?).await?;
    Ok(StatusCode::OK)
}

/// A posted matcher as Steward's.
fn matcher(
    index: usize,
    posted: &steward_wire::alertmanager::Matcher,
) -> Result<Matcher, ApiError> {
    let op = match (posted.is_regex, posted.is_equal) {
        (false, true) => MatchOp::Equal,
        (false, false) => MatchOp::NotEqual,
        (true, true) => MatchOp::Regex,
        (true, false) => MatchOp::NotRegex,
    };
    Matcher::new(&posted.name, op, &posted.value)
        .map_err(|e| bad_body(format!("`matchers[{index}]`: {e}")))
}

/// A posted time.
fn time(field: &str, text: &str) -> Result<i64, ApiError> {
    parse_rfc3339(text)
        .ok_or_else(|| bad_body(format!("`{field}`: `{text}` is not an RFC 3339 time")))
}

/// `POST /api/v2/silences`: creates a silence (one starting in the past starts now), or puts
/// one in place of the silence its `id` names by expiring that one; answers the new id.
pub(crate) async fn post_silences(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiBody(body): ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let posted: PostableSilence = parse_body(&body)?;
    let replaced = match posted.id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => Some(visible_silence(&state, &caller, silence_id(id)?).await?),
        None => None,
    };
    let matchers = posted
        .matchers
        .iter()
        .enumerate()
        .map(|(i, m)| matcher(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let now = now_ms();
    let starts_at_ms = time("startsAt", &posted.starts_at)?.max(now);
    let ends_at_ms = time("endsAt", &posted.ends_at)?;
    if ends_at_ms <= now {
        return Err(bad_body(format!(
            "`endsAt`: `{}` is not in the future",
            posted.ends_at
        )));
    }
    let silence = new_silence(&caller, matchers, starts_at_ms, ends_at_ms, posted.comment)?;
    let stored = store_silence(&state, &caller, &silence, now).await?;
    if let Some(old) = replaced
        && old.ends_at_ms > now
    {
        end_silence(&state, &caller, old.id).await?;
        tracing::info!(
            replaced = old.id,
            silence = stored.id,
            "silence replaced through Alertmanager's API"
        );
    }
    Ok(Json(PostedSilence {
        silence_id: stored.id.to_string(),
    }))
}

/// `GET /api/v2/status`: enough for `amtool` and Grafana's health check. Steward has no
/// Alertmanager YAML to show and forms no Alertmanager cluster.
pub(crate) async fn get_status(State(state): State<AppState>) -> Json<AlertmanagerStatus> {
    Json(AlertmanagerStatus {
        cluster: ClusterStatus {
            name: CLUSTER_NAME.to_owned(),
            status: ClusterState::Ready,
            peers: Vec::new(),
        },
        version_info: VersionInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: String::new(),
            branch: String::new(),
            build_user: String::new(),
            build_date: String::new(),
            go_version: String::new(),
        },
        config: AlertmanagerConfig {
            original: String::new(),
        },
        uptime: rfc3339(state.started_ms),
    })
}

#[cfg(test)]
mod tests;
