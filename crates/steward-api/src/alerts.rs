//! `/api/v1/alerts` and `/api/v1/silences`: alerts posted by other systems (Steward's shape, or
//! Alertmanager's v2 `postableAlerts` — also accepted at `/api/v2/alerts`, where Prometheus
//! and other Alertmanager senders post), listing and acknowledging alerts (with the
//! notifications about them), silences, and the notification outbox.
//!
//! A workspace-scoped key posts alerts for its workspace only: each alert gets its `workspace`
//! label (one naming another workspace is refused), and it sees only alerts and silences of its
//! workspace.
//!
//! What a caller may see, and how a silence is made, stored and ended, is decided here once:
//! [`crate::alertmanager`] calls the same functions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use steward_core::alert::ingest::parse_alerts;
use steward_core::alert::mute::Silence;
use steward_core::alert::route::{MatchOp, Matcher};
use steward_core::alert::{AlertState, Fingerprint, IncomingAlert, Severity};
use steward_core::registry::Labels;
use steward_engine::alerting::ops as alerting;
use steward_store::alerts::{EXTERNAL_SOURCE, MAX_ALERT_PAGE};
use steward_store::notifications::{
    Attempt, MAX_NOTIFICATION_PAGE, NotificationQuery, NotificationState, StoredNotification,
};
use steward_store::{
    Ack, AlertChange, AlertQuery, AlertReceipt, StoredAlert, StoredSilence, now_ms,
};
use steward_wire::alerts as wire;
use steward_wire::time::{rfc3339, rfc3339_opt};

use steward_core::alert::WORKSPACE_LABEL;

use crate::caller::Caller;
use crate::error::store_error;
use crate::extract::{ApiBody, ApiPath, ApiQuery, page_limit};
use crate::{ApiError, AppState};

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// Whether the caller may see an alert (or silence) with these labels.
pub(crate) fn visible(caller: &Caller, labels: &Labels) -> bool {
    caller
        .principal
        .sees(labels.get(WORKSPACE_LABEL).map(String::as_str))
}

/// Ties a scoped caller's alert to its workspace.
fn scope_alert(caller: &Caller, alert: &mut IncomingAlert, index: usize) -> Result<(), ApiError> {
    let Some(own) = caller.principal.workspace.as_ref() else {
        return Ok(());
    };
    match alert.labels.get(WORKSPACE_LABEL) {
        Some(named) if named != own => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "`alerts[{index}].labels.workspace`: this key may post only for workspace `{own}`"
            ),
        )),
        Some(_) => Ok(()),
        None => {
            alert.labels.insert(WORKSPACE_LABEL.to_owned(), own.clone());
            Ok(())
        }
    }
}

/// `POST /api/v1/alerts` (and `/api/v2/alerts`): every alert of the call is stored, or none.
///
/// The body is a [`wire::PostAlerts`], read by [`parse_alerts`] rather than by serde so that a
/// refusal lists every problem with its place.
pub(crate) async fn post_alerts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiBody(body): ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let mut alerts = parse_alerts(&body).map_err(|e| {
        invalid(
            "invalid_alerts",
            "the alerts were refused; nothing was stored",
        )
        .with_details(e.problems)
    })?;
    for (i, alert) in alerts.iter_mut().enumerate() {
        scope_alert(&caller, alert, i)?;
    }
    let received_ms = now_ms();
    let receipts: Vec<AlertReceipt> = alerts
        .into_iter()
        .map(|alert| AlertReceipt {
            alert,
            source: EXTERNAL_SOURCE.to_owned(),
            received_ms,
        })
        .collect();
    let changes = alerting::receive(
        state.control.store().as_ref(),
        state.control.bus(),
        &receipts,
        &caller.actor(),
    )
    .await
    .map_err(store_error)?;
    let count = |kind: AlertChange| changes.iter().filter(|c| **c == kind).count();
    let refused = refused_alerts(&receipts, &changes);
    let accepted = receipts.len() - count(AlertChange::Refused);
    metrics::counter!("steward_alerts_received_total", "source" => EXTERNAL_SOURCE)
        .increment(accepted as u64);
    if !refused.is_empty() {
        tracing::warn!(
            refused = refused.len(),
            caller = %caller.principal.name,
            "posted alerts refused: built-in rules raised alerts of their label sets"
        );
    }
    Ok(Json(wire::AlertsReceived {
        accepted,
        fired: count(AlertChange::Fired),
        refired: count(AlertChange::Refired),
        resolved: count(AlertChange::Resolved),
        unchanged: count(AlertChange::Unchanged),
        refused,
    }))
}

/// The posted alerts left alone because a built-in rule owns their label set: where each was
/// in the call, its fingerprint and why.
fn refused_alerts(receipts: &[AlertReceipt], changes: &[AlertChange]) -> Vec<wire::RefusedAlert> {
    receipts
        .iter()
        .zip(changes)
        .enumerate()
        .filter(|(_, (_, change))| **change == AlertChange::Refused)
        .map(|(index, (receipt, _))| wire::RefusedAlert {
            index,
            fingerprint: receipt.alert.fingerprint().to_string(),
            reason: "raised by a built-in rule; only the rule changes it".to_owned(),
        })
        .collect()
}

/// A stored alert as the API shows it.
fn alert_of(alert: &StoredAlert) -> wire::Alert {
    wire::Alert {
        fingerprint: alert.fingerprint.to_string(),
        labels: (*alert.labels).clone(),
        annotations: (*alert.annotations).clone(),
        severity: alert.severity.as_str().to_owned(),
        source: alert.source.clone(),
        state: alert.state.as_str().to_owned(),
        starts_at: rfc3339(alert.starts_at_ms),
        starts_at_ms: alert.starts_at_ms,
        ends_at: rfc3339_opt(alert.ends_at_ms),
        ends_at_ms: alert.ends_at_ms,
        last_received: rfc3339(alert.last_received_ms),
        last_received_ms: alert.last_received_ms,
        generator_url: alert.generator_url.clone(),
        episode: alert.episode,
        ack: alert.ack.as_ref().map(ack_of),
    }
}

/// An acknowledgement as the API shows it.
fn ack_of(ack: &Ack) -> wire::AlertAck {
    wire::AlertAck {
        by: ack.by.clone(),
        at: rfc3339(ack.at_ms),
        at_ms: ack.at_ms,
        note: ack.note.clone(),
    }
}

/// `GET /api/v1/alerts?state=firing&severity=critical&labels=service=api,env=prod&limit=N`.
pub(crate) async fn list_alerts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<wire::AlertListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit, 100, MAX_ALERT_PAGE)?;
    let alert_state = match query.state.as_deref() {
        None => None,
        Some("firing") => Some(AlertState::Firing),
        Some("resolved") => Some(AlertState::Resolved),
        Some(other) => {
            return Err(invalid(
                "invalid_query",
                format!("`state`: `{other}` is not firing or resolved"),
            ));
        }
    };
    let severity = match query.severity.as_deref() {
        None => None,
        Some(text) => Some(Severity::parse(text).ok_or_else(|| {
            invalid(
                "invalid_query",
                format!("`severity`: `{text}` is not critical, warning or info"),
            )
        })?),
    };
    let mut labels = Labels::new();
    for pair in query.labels.iter().flat_map(|l| l.split(',')) {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(invalid(
                "invalid_query",
                format!("`labels`: `{pair}` is not name=value"),
            ));
        };
        labels.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    if let Some(own) = &caller.principal.workspace {
        labels.insert(WORKSPACE_LABEL.to_owned(), own.clone());
    }
    let alerts = state
        .control
        .store()
        .alerts(&AlertQuery {
            state: alert_state,
            severity,
            labels,
            limit,
        })
        .await
        .map_err(store_error)?;
    Ok(Json(wire::AlertList {
        alerts: alerts.iter().map(alert_of).collect(),
    }))
}

fn fingerprint(text: &str) -> Result<Fingerprint, ApiError> {
    Fingerprint::parse(text).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no alert `{text}` (fingerprints are 16 hex digits)"),
        )
    })
}

/// The alert `text` names, if the caller may see it.
async fn visible_alert(
    state: &AppState,
    caller: &Caller,
    text: &str,
) -> Result<StoredAlert, ApiError> {
    let fp = fingerprint(text)?;
    match state.control.store().alert(fp).await.map_err(store_error)? {
        Some(alert) if visible(caller, &alert.labels) => Ok(alert),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no alert `{text}`"),
        )),
    }
}

/// `GET /api/v1/alerts/{fingerprint}`.
pub(crate) async fn get_alert(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(text): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let alert = visible_alert(&state, &caller, &text).await?;
    let store = state.control.store();
    let query = NotificationQuery {
        fingerprint: Some(alert.fingerprint),
        limit: NOTIFICATIONS_SHOWN,
        ..NotificationQuery::default()
    };
    let mut notifications = Vec::new();
    for notification in store.notifications(&query).await.map_err(store_error)? {
        // A group's notification may carry other workspaces' alerts: shown only to a caller
        // who may see them all.
        if !notification
            .notice
            .alerts
            .iter()
            .all(|a| visible(&caller, &a.labels))
        {
            continue;
        }
        let attempts = store
            .notification_attempts(notification.id)
            .await
            .map_err(store_error)?;
        notifications.push(wire::NotificationDetail {
            notification: notification_of(&notification),
            attempt_log: attempts.iter().map(attempt_of).collect(),
        });
    }
    Ok(Json(wire::AlertDetail {
        alert: alert_of(&alert),
        notifications,
    }))
}

/// How many of an alert's notifications its detail shows (the newest).
const NOTIFICATIONS_SHOWN: u32 = 20;

/// A notification as the API shows it.
fn notification_of(n: &StoredNotification) -> wire::Notification {
    wire::Notification {
        id: n.id,
        receiver: n.notice.receiver.clone(),
        group_key: n.notice.group_key.clone(),
        reason: n.notice.reason.as_str().to_owned(),
        status: n.notice.status().as_str().to_owned(),
        alerts: n.notice.alerts.len(),
        state: n.state.as_str().to_owned(),
        attempts: n.attempts,
        created: rfc3339(n.created_ms),
        created_ms: n.created_ms,
        next_attempt: rfc3339(n.next_attempt_ms),
        next_attempt_ms: n.next_attempt_ms,
        expires: rfc3339(n.expires_ms),
        expires_ms: n.expires_ms,
        finished: rfc3339_opt(n.finished_ms),
        finished_ms: n.finished_ms,
        last_error: n.last_error.clone(),
    }
}

/// An attempt to send a notification as the API shows it.
fn attempt_of(a: &Attempt) -> wire::NotificationAttempt {
    wire::NotificationAttempt {
        at: rfc3339(a.at_ms),
        at_ms: a.at_ms,
        latency_ms: a.latency_ms,
        status: a.status,
        error: a.error.clone(),
    }
}

/// `GET /api/v1/notifications`: the outbox, newest first. A scoped caller sees only those all
/// of whose alerts are of its workspace.
pub(crate) async fn list_notifications(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<wire::NotificationListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let wanted = match query.state.as_deref() {
        None => None,
        Some(text) => Some(NotificationState::parse(text).ok_or_else(|| {
            invalid(
                "invalid_query",
                format!("`state`: `{text}` is not pending, delivered or failed"),
            )
        })?),
    };
    let limit = page_limit(query.limit, 100, MAX_NOTIFICATION_PAGE)?;
    // A scoped caller's notifications are picked from a wider page, since others' come
    // between them.
    let scoped = caller.principal.workspace.is_some();
    let found = state
        .control
        .store()
        .notifications(&NotificationQuery {
            fingerprint: None,
            receiver: query.receiver,
            state: wanted,
            limit: if scoped { MAX_NOTIFICATION_PAGE } else { limit },
        })
        .await
        .map_err(store_error)?;
    let notifications = found
        .iter()
        .filter(|n| n.notice.alerts.iter().all(|a| visible(&caller, &a.labels)))
        .take(limit as usize)
        .map(notification_of)
        .collect();
    Ok(Json(wire::NotificationList { notifications }))
}

/// `POST /api/v1/alerts/{fingerprint}/ack`: no repeats of the current episode until it changes.
pub(crate) async fn ack_alert(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(text): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let body: wire::AckAlert = if body.is_empty() {
        wire::AckAlert::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| invalid("invalid_body", format!("invalid acknowledgement: {e}")))?
    };
    if body.note.chars().count() > 4_096 {
        return Err(invalid("invalid_body", "`note`: at most 4096 characters"));
    }
    let alert = visible_alert(&state, &caller, &text).await?;
    let ack = Ack {
        by: caller.principal.name.clone(),
        at_ms: now_ms(),
        note: body.note,
    };
    let acked = alerting::acknowledge(
        state.control.store().as_ref(),
        state.control.bus(),
        alert.fingerprint,
        &ack,
        &caller.actor(),
    )
    .await
    .map_err(store_error)?;
    Ok(Json(alert_of(&acked)))
}

/// A stored silence as the API shows it.
fn silence_of(silence: &StoredSilence) -> wire::Silence {
    wire::Silence {
        id: silence.id,
        matchers: silence.matchers.iter().map(ToString::to_string).collect(),
        starts_at: rfc3339(silence.starts_at_ms),
        starts_at_ms: silence.starts_at_ms,
        ends_at: rfc3339(silence.ends_at_ms),
        ends_at_ms: silence.ends_at_ms,
        created_by: silence.created_by.clone(),
        created_at: rfc3339(silence.created_at_ms),
        created_at_ms: silence.created_at_ms,
        comment: silence.comment.clone(),
    }
}

/// Whether a scoped caller may see or touch a silence: it must pin its workspace.
fn silence_visible(caller: &Caller, matchers: &[Matcher]) -> bool {
    match &caller.principal.workspace {
        None => true,
        Some(own) => matchers
            .iter()
            .any(|m| m.name == WORKSPACE_LABEL && m.op == MatchOp::Equal && &m.value == own),
    }
}

/// `GET /api/v1/silences`: those in force or to come.
pub(crate) async fn list_silences(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    let silences = visible_silences(&state, &caller, now_ms()).await?;
    Ok(Json(wire::SilenceList {
        silences: silences.iter().map(silence_of).collect(),
    }))
}

/// The silences the caller may see that have not ended at `now_ms` (`i64::MIN`: every one
/// kept, ended ones too), by id.
pub(crate) async fn visible_silences(
    state: &AppState,
    caller: &Caller,
    now_ms: i64,
) -> Result<Vec<StoredSilence>, ApiError> {
    let mut silences = state
        .control
        .store()
        .silences(now_ms)
        .await
        .map_err(store_error)?;
    silences.retain(|s| silence_visible(caller, &s.matchers));
    Ok(silences)
}

/// The silence `id` (ended or not), if the caller may see it.
pub(crate) async fn visible_silence(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<StoredSilence, ApiError> {
    visible_silences(state, caller, i64::MIN)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| no_silence(&id.to_string()))
}

/// The answer about a silence that does not exist or that the caller may not see.
pub(crate) fn no_silence(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no silence {id}"),
    )
}

/// A silence by `caller`, ready to store: a scoped caller's is pinned to its workspace, and it
/// must pass [`Silence::validate`] (a matcher, a comment, at most 365 days).
pub(crate) fn new_silence(
    caller: &Caller,
    mut matchers: Vec<Matcher>,
    starts_at_ms: i64,
    ends_at_ms: i64,
    comment: String,
) -> Result<Silence, ApiError> {
    if let Some(own) = &caller.principal.workspace
        && !silence_visible(caller, &matchers)
    {
        matchers.push(
            Matcher::new(WORKSPACE_LABEL, MatchOp::Equal, own)
                .map_err(|e| invalid("invalid_body", e.to_string()))?,
        );
    }
    let silence = Silence {
        id: 0,
        matchers,
        starts_at_ms,
        ends_at_ms,
        created_by: caller.principal.name.clone(),
        comment,
    };
    silence
        .validate()
        .map_err(|e| invalid("invalid_body", e.to_string()))?;
    Ok(silence)
}

/// Stores a silence made by [`new_silence`] (audited, `silence.create`) and tells the
/// dispatcher.
pub(crate) async fn store_silence(
    state: &AppState,
    caller: &Caller,
    silence: &Silence,
    now_ms: i64,
) -> Result<StoredSilence, ApiError> {
    let stored = alerting::create_silence(
        state.control.store().as_ref(),
        state.control.bus(),
        silence,
        now_ms,
        &caller.actor(),
    )
    .await
    .map_err(store_error)?;
    tracing::info!(
        silence = stored.id,
        by = %caller.principal.name,
        ends_at_ms = stored.ends_at_ms,
        "silence created"
    );
    Ok(stored)
}

/// Ends the silence `id` now (audited, `silence.expire`) and tells the dispatcher. A silence a
/// scoped caller may not see is not found.
pub(crate) async fn end_silence(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<StoredSilence, ApiError> {
    // Only a scoped caller needs the silence read first, to see whether it is its own.
    if caller.principal.workspace.is_some() {
        visible_silence(state, caller, id).await?;
    }
    let expired = alerting::expire_silence(
        state.control.store().as_ref(),
        state.control.bus(),
        id,
        now_ms(),
        &caller.actor(),
    )
    .await
    .map_err(store_error)?;
    tracing::info!(silence = id, by = %caller.principal.name, "silence expired");
    Ok(expired)
}

/// `POST /api/v1/silences`: 201 with the silence.
pub(crate) async fn create_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiBody(body): ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let body: wire::NewSilence = serde_json::from_slice(&body)
        .map_err(|e| invalid("invalid_body", format!("invalid silence: {e}")))?;
    let mut matchers = Vec::with_capacity(body.matchers.len());
    for (i, text) in body.matchers.iter().enumerate() {
        matchers.push(
            Matcher::parse(text)
                .map_err(|e| invalid("invalid_body", format!("`matchers[{i}]`: {e}")))?,
        );
    }
    let now = now_ms();
    let starts_at_ms = body.starts_at_ms.unwrap_or(now);
    let ends_at_ms = match (body.ends_at_ms, body.duration.as_deref()) {
        (Some(end), None) => end,
        (None, Some(text)) => {
            let duration = humantime::parse_duration(text)
                .map_err(|e| invalid("invalid_body", format!("`duration`: `{text}`: {e}")))?;
            starts_at_ms.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
        }
        _ => {
            return Err(invalid(
                "invalid_body",
                "give exactly one of `ends_at_ms` and `duration`",
            ));
        }
    };
    let silence = new_silence(&caller, matchers, starts_at_ms, ends_at_ms, body.comment)?;
    let stored = store_silence(&state, &caller, &silence, now).await?;
    Ok((StatusCode::CREATED, Json(silence_of(&stored))))
}

/// `DELETE /api/v1/silences/{id}`: ends it now.
pub(crate) async fn expire_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let expired = end_silence(&state, &caller, id).await?;
    Ok(Json(silence_of(&expired)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The body [`post_alerts`] declares is what [`parse_alerts`] takes: a body it accepts is
    /// read as a [`wire::PostAlerts`] too, alert for alert.
    #[test]
    fn accepted_bodies_are_post_alerts() {
        for body in [
            json!([{
                "labels": {"alertname": "ApiDown", "severity": "critical"},
                "annotations": {"summary": "down"},
                "startsAt": "2026-12-01T08:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
            }]),
            json!({"alerts": [
                {"labels": {"alertname": "QueueDeep"}, "severity": "INFO",
                 "starts_at": "2026-12-01T08:00:00+00:00", "annotations": null},
                {"labels": {"alertname": "DiskFull"}, "generator_url": null, "ends_at": ""},
            ]}),
        ] {
            let bytes = serde_json::to_vec(&body).unwrap();
            let parsed = parse_alerts(&bytes).unwrap();
            let typed: wire::PostAlerts = serde_json::from_value(body.clone()).unwrap();
            let count = match &typed {
                wire::PostAlerts::Postable(alerts) => alerts.len(),
                wire::PostAlerts::Batch(batch) => batch.alerts.len(),
            };
            assert_eq!(count, parsed.len(), "{body}");
        }
    }
}
