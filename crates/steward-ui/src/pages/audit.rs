//! `/audit`: the audit trail, filtered by actor, action and workspace and paged by sequence
//! number, under the result of verifying its hash chain.
//!
//! The API lets admin keys read the trail (a workspace-scoped admin its workspace's part) and
//! only unscoped admins verify the chain; any other key is shown why it may not.

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use steward_wire::audit::{AuditEvent, AuditPage, AuditQuery, AuditVerified};
use steward_wire::paths;

use crate::render::Page;
use crate::session::Signed;
use crate::{PageError, Ui};

/// Events per page.
const PAGE_SIZE: u32 = 100;

/// Actions offered as suggestions in the filter form.
const KNOWN_ACTIONS: &[&str] = &[
    "alert.ack",
    "alert.receive",
    "config.reload",
    "key.bootstrap",
    "key.create",
    "key.revoke",
    "registry.sync",
    "session.end",
    "session.start",
    "silence.create",
    "silence.expire",
];

/// The page's query: the filters, and where the page starts.
#[derive(Deserialize)]
pub(crate) struct AuditFilter {
    /// Only this actor's events.
    actor: Option<String>,
    /// Only events of this action.
    action: Option<String>,
    /// Only this workspace's events.
    workspace: Option<String>,
    /// Events after this sequence number.
    after: Option<String>,
}

/// The filters in force, empty ones dropped.
#[derive(Serialize, Default)]
struct Filters {
    /// Only this actor's events.
    actor: Option<String>,
    /// Only events of this action.
    action: Option<String>,
    /// Only this workspace's events.
    workspace: Option<String>,
}

impl Filters {
    /// The filters of a query, empty ones dropped.
    fn of(query: &AuditFilter) -> Self {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Self {
            actor: given(&query.actor),
            action: given(&query.action),
            workspace: given(&query.workspace),
        }
    }

    /// Whether any filter is set.
    fn any(&self) -> bool {
        self.actor.is_some() || self.action.is_some() || self.workspace.is_some()
    }

    /// The dashboard's link to this page of the filtered trail, after `after`.
    fn link(&self, after: i64) -> String {
        let mut query: Vec<String> = [
            ("actor", &self.actor),
            ("action", &self.action),
            ("workspace", &self.workspace),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            value
                .as_deref()
                .map(|v| format!("{name}={}", paths::encode(v)))
        })
        .collect();
        if after > 0 {
            query.push(format!("after={after}"));
        }
        if query.is_empty() {
            "/audit".to_owned()
        } else {
            format!("/audit?{}", query.join("&"))
        }
    }
}

/// An event as a row: the event, with its details written out.
#[derive(Serialize)]
struct EventRow {
    /// The event.
    event: AuditEvent,
    /// Its details as compact JSON; empty when there are none.
    details: String,
}

/// What verifying the chain found.
#[derive(Serialize)]
struct Verification {
    /// `ok`, `failed` (broken) or `unknown` (not allowed to verify).
    state: &'static str,
    /// Events checked, when it holds.
    events: u64,
    /// The newest event checked, when it holds: its sequence number and hash.
    head: Option<(i64, String)>,
    /// Where and how it is broken, or why it was not verified.
    message: Option<String>,
}

/// What `/audit` shows.
#[derive(Serialize)]
struct AuditView {
    /// The chain's verification.
    verification: Verification,
    /// The filters in force.
    filters: Filters,
    /// Actions to suggest.
    actions: &'static [&'static str],
    /// The events of this page, by sequence number.
    events: Vec<EventRow>,
    /// Where this page starts (events after it).
    after: i64,
    /// The newest sequence number of the whole trail.
    head: i64,
    /// The link to the next page; `None` on the last.
    next: Option<String>,
    /// The link to the first page, when this is not it.
    first: Option<String>,
    /// The link to the newest events, when the trail is longer than a page and no filter is
    /// set.
    newest: Option<String>,
}

/// `GET /audit`: a page of the trail, filtered, with the chain's verification on top.
pub(crate) async fn list(
    State(ui): State<Ui>,
    Query(query): Query<AuditFilter>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let data = read_audit(&ui, &signed, &query).await?;
        ui.render(
            &signed,
            Page {
                template: "audit.html",
                title: "Audit trail".into(),
                nav: "audit",
                live: false,
                data,
            },
        )
    }
    .await;
    ui.respond(result)
}

/// Where the page starts: `after`, a sequence number (0 or none: the start).
fn parse_after(after: Option<&str>) -> Result<i64, PageError> {
    match after.map(str::trim).filter(|a| !a.is_empty()) {
        None => Ok(0),
        Some(text) => text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            PageError::BadRequest(format!("`after`: `{text}` is not a sequence number"))
        }),
    }
}

/// Reads what `/audit` shows: the page first, so a key that may not read the trail is told
/// so.
async fn read_audit(ui: &Ui, signed: &Signed, query: &AuditFilter) -> Result<AuditView, PageError> {
    let after = parse_after(query.after.as_deref())?;
    let filters = Filters::of(query);
    let api_query = AuditQuery {
        after,
        limit: Some(PAGE_SIZE),
        actor: filters.actor.clone(),
        action: filters.action.clone(),
        workspace: filters.workspace.clone(),
        actor_kind: None,
        node: None,
    };
    let path = paths::AUDIT
        .with_query(&[], &api_query)
        .map_err(|e| PageError::Internal(e.to_string()))?;
    let page: AuditPage = ui.get(signed, &path).await.map_err(|e| match e {
        PageError::Forbidden(why) => PageError::Forbidden(format!(
            "Only admin keys may read the audit trail; this session's key may not ({why})."
        )),
        other => other,
    })?;
    let verification = verify(ui, signed).await?;
    let newest_after = (page.head - i64::from(PAGE_SIZE)).max(0);
    Ok(AuditView {
        verification,
        next: page.next_after.map(|n| filters.link(n)),
        first: (after > 0).then(|| filters.link(0)),
        newest: (!filters.any() && newest_after > after).then(|| filters.link(newest_after)),
        filters,
        actions: KNOWN_ACTIONS,
        events: page.events.into_iter().map(event_row).collect(),
        after,
        head: page.head,
    })
}

/// An event as a row.
fn event_row(event: AuditEvent) -> EventRow {
    let details =
        if event.details.is_null() || event.details.as_object().is_some_and(|o| o.is_empty()) {
            String::new()
        } else {
            event.details.to_string()
        };
    EventRow { event, details }
}

/// Verifies the chain through the API: it holds, it is broken (409, with where), or this key
/// may not verify it.
async fn verify(ui: &Ui, signed: &Signed) -> Result<Verification, PageError> {
    match ui
        .get::<AuditVerified>(signed, paths::AUDIT_VERIFY.template())
        .await
    {
        Ok(verified) => Ok(Verification {
            state: "ok",
            events: verified.events,
            head: verified.head.map(|h| (h.seq, h.hash)),
            message: None,
        }),
        Err(PageError::Api {
            status: StatusCode::CONFLICT,
            message,
        }) => Ok(Verification {
            state: "failed",
            events: 0,
            head: None,
            message: Some(message),
        }),
        Err(PageError::Forbidden(why)) => Ok(Verification {
            state: "unknown",
            events: 0,
            head: None,
            message: Some(why),
        }),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_filters_and_encode_them() {
        let filters = Filters {
            actor: Some("a b".into()),
            action: Some("alert.ack".into()),
            workspace: None,
        };
        assert_eq!(filters.link(0), "/audit?actor=a%20b&action=alert.ack");
        assert_eq!(
            filters.link(7),
            "/audit?actor=a%20b&action=alert.ack&after=7"
        );
        assert_eq!(Filters::default().link(0), "/audit");
    }

    #[test]
    fn after_is_a_sequence_number_or_the_start() {
        assert_eq!(parse_after(None).unwrap(), 0);
        assert_eq!(parse_after(Some(" ")).unwrap(), 0);
        assert_eq!(parse_after(Some("42")).unwrap(), 42);
        assert!(parse_after(Some("-1")).is_err());
        assert!(parse_after(Some("x")).is_err());
    }
}
