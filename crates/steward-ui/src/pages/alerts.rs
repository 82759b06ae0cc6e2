//! `/alerts` and `/alerts/{fingerprint}`: the alerts in four groups (firing and not
//! acknowledged, acknowledged, muted, recently resolved) beside the silences in force, and one
//! alert with its labels, annotations, acknowledgement, what mutes it and the notifications
//! about it with their attempts. Operators acknowledge, silence, and expire silences.
//!
//! Steward's own alert shape (`GET /api/v1/alerts`) does not say whether an alert is muted;
//! Alertmanager's (`GET /api/v2/alerts`) does, for each firing alert: the ids of the silences
//! muting it and the fingerprints of the alerts inhibiting it, and an alert suppressed with
//! neither is held by a maintenance window. Both are read, and joined by fingerprint.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use steward_core::alert::route::{MatchOp, Matcher};
use steward_wire::alertmanager::{AlertState, GettableAlert};
use steward_wire::alerts::{
    AckAlert, Alert, AlertDetail, AlertList, AlertListQuery, NewSilence, NotificationDetail,
    Silence, SilenceList,
};
use steward_wire::paths;

use crate::render::Page;
use crate::session::Signed;
use crate::{PageError, Ui};

use super::signed_form;

/// Firing alerts read at most.
const FIRING_READ: u32 = 1_000;
/// Resolved alerts shown: the most recently received.
const RESOLVED_SHOWN: u32 = 20;
/// How long a silence made from an alert's page lasts: the choices offered.
const DURATIONS: [&str; 3] = ["1h", "4h", "24h"];

/// An alert as a row: the alert, the name it is shown by, and what mutes it.
#[derive(Serialize)]
struct AlertRow {
    /// The alert as the API answers it.
    alert: Alert,
    /// Its `alertname` label, else its fingerprint.
    name: String,
    /// What mutes it; `None` when nothing does, it is not firing, or it is not known.
    mute: Option<Mute>,
}

/// What mutes a firing alert.
#[derive(Serialize)]
struct Mute {
    /// The silences muting it.
    silences: Vec<SilenceRef>,
    /// The firing alerts inhibiting it.
    inhibitors: Vec<Inhibitor>,
    /// Suppressed by no silence and no alert: a maintenance window holds it.
    window: bool,
}

/// A silence muting an alert.
#[derive(Serialize)]
struct SilenceRef {
    /// Its id, as Alertmanager's shape writes it.
    id: String,
    /// The silence itself, when the key may read it.
    silence: Option<Silence>,
}

/// A firing alert inhibiting another.
#[derive(Serialize)]
struct Inhibitor {
    /// Its fingerprint.
    fingerprint: String,
    /// Its name, when the key may see it (an alert of another workspace may inhibit).
    name: Option<String>,
}

/// What is known about muting: Alertmanager's view of the firing alerts, and the silences.
struct Muting {
    /// Every firing alert the key sees, by fingerprint; `None` when it could not be read.
    alerts: Option<HashMap<String, GettableAlert>>,
    /// The silences in force or to come that the key sees.
    silences: Vec<Silence>,
}

impl Muting {
    /// What mutes the alert `fingerprint`, if anything does.
    fn mute(&self, fingerprint: &str) -> Option<Mute> {
        let alerts = self.alerts.as_ref()?;
        let status = &alerts.get(fingerprint)?.status;
        if status.state != AlertState::Suppressed {
            return None;
        }
        let silences = status
            .silenced_by
            .iter()
            .map(|id| SilenceRef {
                id: id.clone(),
                silence: self
                    .silences
                    .iter()
                    .find(|s| s.id.to_string() == *id)
                    .cloned(),
            })
            .collect();
        let inhibitors = status
            .inhibited_by
            .iter()
            .map(|fp| Inhibitor {
                fingerprint: fp.clone(),
                name: alerts.get(fp).map(|a| display_name(&a.labels, fp)),
            })
            .collect();
        Some(Mute {
            silences,
            inhibitors,
            window: status.silenced_by.is_empty() && status.inhibited_by.is_empty(),
        })
    }

    /// How many firing alerts the silence `id` mutes; `None` when not known.
    fn muted_by(&self, id: i64) -> Option<usize> {
        let id = id.to_string();
        self.alerts.as_ref().map(|alerts| {
            alerts
                .values()
                .filter(|a| a.status.silenced_by.contains(&id))
                .count()
        })
    }
}

/// Reads what mutes the firing alerts; a part the key may not read is left empty.
async fn read_muting(ui: &Ui, signed: &Signed) -> Result<Muting, PageError> {
    let alerts: Option<Vec<GettableAlert>> = ui
        .get_if_allowed(signed, paths::AM_ALERTS.template())
        .await?;
    let silences: Option<SilenceList> = ui
        .get_if_allowed(signed, paths::SILENCES.template())
        .await?;
    Ok(Muting {
        alerts: alerts.map(|all| {
            all.into_iter()
                .map(|a| (a.fingerprint.clone(), a))
                .collect()
        }),
        silences: silences.map(|s| s.silences).unwrap_or_default(),
    })
}

/// The name an alert is shown by: its `alertname`, else its fingerprint.
fn display_name(labels: &BTreeMap<String, String>, fingerprint: &str) -> String {
    labels
        .get("alertname")
        .filter(|name| !name.is_empty())
        .cloned()
        .unwrap_or_else(|| fingerprint.to_owned())
}

/// An alert as a row, with what mutes it.
fn row(alert: Alert, muting: &Muting) -> AlertRow {
    let mute = if alert.state == "firing" {
        muting.mute(&alert.fingerprint)
    } else {
        None
    };
    AlertRow {
        name: display_name(&alert.labels, &alert.fingerprint),
        mute,
        alert,
    }
}

/// A severity's rank, worst first.
fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 0,
        "warning" => 1,
        "info" => 2,
        _ => 3,
    }
}

/// A group of alerts on the list.
#[derive(Serialize)]
struct Group {
    /// Its anchor.
    id: &'static str,
    /// Its heading.
    title: &'static str,
    /// What is said when it is empty.
    empty: &'static str,
    /// Its alerts, worst first, then newest first.
    rows: Vec<AlertRow>,
}

impl Group {
    /// An empty group.
    fn new(id: &'static str, title: &'static str, empty: &'static str) -> Self {
        Self {
            id,
            title,
            empty,
            rows: Vec::new(),
        }
    }
}

/// A silence as a row on the list.
#[derive(Serialize)]
struct SilenceRow {
    /// The silence.
    silence: Silence,
    /// It starts later.
    pending: bool,
    /// How many firing alerts it mutes; `None` when not known.
    mutes: Option<usize>,
}

/// What `/alerts` shows.
#[derive(Serialize)]
struct AlertsPage {
    /// Firing and not acknowledged, acknowledged, muted, resolved.
    groups: Vec<Group>,
    /// More alerts fire than were read.
    more_firing: bool,
    /// Whether muting could be read (else muted alerts show as not muted).
    mute_known: bool,
    /// The silences in force or to come.
    silences: Vec<SilenceRow>,
}

/// `GET /alerts`: the alerts by what they need, and the silences.
pub(crate) async fn list(State(ui): State<Ui>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let data = read_alerts(&ui, &signed).await?;
        ui.render(
            &signed,
            Page {
                template: "alerts.html",
                title: "Alerts".into(),
                nav: "alerts",
                live: true,
                data,
            },
        )
    }
    .await;
    ui.respond(result)
}

/// The path of the alert list in `state`, `limit` at most.
fn alerts_path(state: &str, limit: u32) -> Result<String, PageError> {
    let query = AlertListQuery {
        state: Some(state.to_owned()),
        limit: Some(limit),
        ..AlertListQuery::default()
    };
    paths::ALERTS
        .with_query(&[], &query)
        .map_err(|e| PageError::Internal(e.to_string()))
}

/// Reads and groups what `/alerts` shows.
async fn read_alerts(ui: &Ui, signed: &Signed) -> Result<AlertsPage, PageError> {
    let firing: AlertList = ui.get(signed, &alerts_path("firing", FIRING_READ)?).await?;
    let resolved: AlertList = ui
        .get(signed, &alerts_path("resolved", RESOLVED_SHOWN)?)
        .await?;
    let muting = read_muting(ui, signed).await?;
    let more_firing = firing.alerts.len() >= FIRING_READ as usize;
    let mut groups = vec![
        Group::new(
            "firing",
            "Firing, not acknowledged",
            "Nothing unacknowledged is firing.",
        ),
        Group::new(
            "acknowledged",
            "Acknowledged",
            "No firing alert is acknowledged.",
        ),
        Group::new(
            "muted",
            "Silenced or inhibited",
            "No firing alert is muted.",
        ),
        Group::new(
            "resolved",
            "Resolved recently",
            "Nothing resolved recently.",
        ),
    ];
    for alert in firing.alerts {
        let row = row(alert, &muting);
        let index = match (&row.mute, &row.alert.ack) {
            (Some(_), _) => 2,
            (None, Some(_)) => 1,
            (None, None) => 0,
        };
        groups[index].rows.push(row);
    }
    for group in groups.iter_mut().take(3) {
        group.rows.sort_by(|a, b| {
            severity_rank(&a.alert.severity)
                .cmp(&severity_rank(&b.alert.severity))
                .then_with(|| b.alert.starts_at_ms.cmp(&a.alert.starts_at_ms))
        });
    }
    if let Some(group) = groups.get_mut(3) {
        group.rows = resolved
            .alerts
            .into_iter()
            .map(|a| row(a, &muting))
            .collect();
    }
    Ok(AlertsPage {
        groups,
        more_firing,
        mute_known: muting.alerts.is_some(),
        silences: silence_rows(&muting),
    })
}

/// The silences as rows: whether each has started, and how many alerts it mutes.
fn silence_rows(muting: &Muting) -> Vec<SilenceRow> {
    let now = steward_store::now_ms();
    muting
        .silences
        .iter()
        .map(|s| SilenceRow {
            pending: s.starts_at_ms > now,
            mutes: muting.muted_by(s.id),
            silence: s.clone(),
        })
        .collect()
}

/// What `/alerts/{fingerprint}` shows.
#[derive(Serialize)]
struct AlertPage {
    /// The alert, with what mutes it.
    row: AlertRow,
    /// Its source link, when it is an `http(s)` URL.
    generator_link: Option<String>,
    /// Whether muting could be read.
    mute_known: bool,
    /// The newest notifications carrying it, with their attempts.
    notifications: Vec<NotificationDetail>,
    /// The matchers a silence made from this alert gets: one per label.
    matchers: Vec<String>,
    /// The durations a silence may be given here.
    durations: [&'static str; 3],
}

/// `GET /alerts/{fingerprint}`: one alert in full.
pub(crate) async fn detail(
    State(ui): State<Ui>,
    Path(fingerprint): Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let data = read_alert(&ui, &signed, &fingerprint).await?;
        ui.render(
            &signed,
            Page {
                template: "alert.html",
                title: format!("Alert {}", data.row.name),
                nav: "alerts",
                live: true,
                data,
            },
        )
    }
    .await;
    ui.respond(result)
}

/// Reads what `/alerts/{fingerprint}` shows.
async fn read_alert(ui: &Ui, signed: &Signed, fingerprint: &str) -> Result<AlertPage, PageError> {
    let path = paths::ALERT.with(&[&fingerprint]);
    let detail: AlertDetail = ui.get(signed, &path).await?;
    let muting = read_muting(ui, signed).await?;
    let generator_link = detail
        .alert
        .generator_url
        .clone()
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"));
    let matchers = matchers_of(&detail.alert.labels)?;
    Ok(AlertPage {
        row: row(detail.alert, &muting),
        generator_link,
        mute_known: muting.alerts.is_some(),
        notifications: detail.notifications,
        matchers,
        durations: DURATIONS,
    })
}

/// Equality matchers for every label, written as the API parses them (`name="value"`).
fn matchers_of(labels: &BTreeMap<String, String>) -> Result<Vec<String>, PageError> {
    labels
        .iter()
        .map(|(name, value)| {
            Matcher::new(name, MatchOp::Equal, value)
                .map(|m| m.to_string())
                .map_err(|e| PageError::BadRequest(format!("cannot silence this alert: {e}")))
        })
        .collect()
}

/// A request body as JSON.
fn json<T: Serialize>(body: &T) -> Result<serde_json::Value, PageError> {
    serde_json::to_value(body)
        .map_err(|e| PageError::Internal(format!("cannot write the request: {e}")))
}

/// Where a form about the alert `fingerprint` returns to: the list, or the alert's page.
fn back_to(fingerprint: &str, back: Option<&str>) -> String {
    match back {
        Some("list") => "/alerts".to_owned(),
        _ => format!("/alerts/{}", paths::encode(fingerprint)),
    }
}

/// The acknowledgement form.
#[derive(Deserialize)]
pub(crate) struct AckForm {
    /// The session's form token.
    #[serde(default)]
    csrf: String,
    /// Why, or what is being done.
    #[serde(default)]
    note: String,
    /// `list` to return to the list; else the alert's page.
    back: Option<String>,
}

/// `POST /alerts/{fingerprint}/ack`: acknowledges the alert's episode with a note (operators).
pub(crate) async fn ack(
    State(ui): State<Ui>,
    Path(fingerprint): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (signed, form) = signed_form::<AckForm>(&ui, request).await?;
        signed.check_form(&form.csrf)?;
        let body = json(&AckAlert {
            note: form.note.trim().to_owned(),
        })?;
        let path = paths::ALERT_ACK.with(&[&fingerprint]);
        ui.act(&signed, Method::POST, &path, Some(body)).await?;
        let back = back_to(&fingerprint, form.back.as_deref());
        Ok(Redirect::to(&ui.link(&back)).into_response())
    }
    .await;
    ui.respond(result)
}

/// The silence form.
#[derive(Deserialize)]
pub(crate) struct SilenceForm {
    /// The session's form token.
    #[serde(default)]
    csrf: String,
    /// One of [`DURATIONS`].
    duration: String,
    /// Why.
    #[serde(default)]
    comment: String,
}

/// `POST /alerts/{fingerprint}/silence`: silences alerts with every label of this one, for
/// the chosen time (operators).
pub(crate) async fn silence(
    State(ui): State<Ui>,
    Path(fingerprint): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (signed, form) = signed_form::<SilenceForm>(&ui, request).await?;
        signed.check_form(&form.csrf)?;
        if !DURATIONS.contains(&form.duration.as_str()) {
            return Err(PageError::BadRequest(format!(
                "a silence lasts {}; not `{}`",
                DURATIONS.join(", "),
                form.duration
            )));
        }
        let path = paths::ALERT.with(&[&fingerprint]);
        let detail: AlertDetail = ui.get(&signed, &path).await?;
        let body = json(&NewSilence {
            matchers: matchers_of(&detail.alert.labels)?,
            duration: Some(form.duration),
            comment: form.comment.trim().to_owned(),
            ..NewSilence::default()
        })?;
        ui.act(
            &signed,
            Method::POST,
            paths::SILENCES.template(),
            Some(body),
        )
        .await?;
        let back = back_to(&fingerprint, None);
        Ok(Redirect::to(&ui.link(&back)).into_response())
    }
    .await;
    ui.respond(result)
}

/// The form that expires a silence.
#[derive(Deserialize)]
pub(crate) struct ExpireForm {
    /// The session's form token.
    #[serde(default)]
    csrf: String,
    /// The alert whose page to return to; else the list.
    alert: Option<String>,
}

/// `POST /silences/{id}/expire`: ends a silence now (operators).
pub(crate) async fn expire_silence(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (signed, form) = signed_form::<ExpireForm>(&ui, request).await?;
        signed.check_form(&form.csrf)?;
        let id: i64 = id
            .parse()
            .map_err(|_| PageError::NotFound(format!("no silence `{id}`")))?;
        let path = paths::SILENCE.with(&[&id]);
        ui.act(&signed, Method::DELETE, &path, None).await?;
        let back = match form.alert.as_deref().filter(|fp| !fp.is_empty()) {
            Some(fingerprint) => back_to(fingerprint, None),
            None => "/alerts#silences".to_owned(),
        };
        Ok(Redirect::to(&ui.link(&back)).into_response())
    }
    .await;
    ui.respond(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_read_back_as_the_labels() {
        let labels = BTreeMap::from([
            ("alertname".to_owned(), "ApiDown".to_owned()),
            ("path".to_owned(), "C:\\x \"y\"\nz".to_owned()),
        ]);
        let matchers = matchers_of(&labels).unwrap();
        assert_eq!(matchers[0], "alertname=\"ApiDown\"");
        for (text, (name, value)) in matchers.iter().zip(&labels) {
            let parsed = Matcher::parse(text).unwrap();
            assert_eq!(parsed, Matcher::new(name, MatchOp::Equal, value).unwrap());
        }
    }

    #[test]
    fn forms_return_to_the_list_or_the_alert_only() {
        assert_eq!(back_to("00000000000000ff", Some("list")), "/alerts");
        assert_eq!(
            back_to("00000000000000ff", None),
            "/alerts/00000000000000ff"
        );
        assert_eq!(
            back_to("//evil.example", Some("x")),
            "/alerts/%2F%2Fevil.example"
        );
    }

    #[test]
    fn an_alert_is_named_by_its_alertname_or_fingerprint() {
        let labels = BTreeMap::from([("alertname".to_owned(), "ApiDown".to_owned())]);
        assert_eq!(display_name(&labels, "ab"), "ApiDown");
        assert_eq!(display_name(&BTreeMap::new(), "ab"), "ab");
    }
}
