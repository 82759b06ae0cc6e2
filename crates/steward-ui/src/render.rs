//! Pages as HTML: the templates compiled into the binary, what every page's context holds,
//! and the headers every page is answered with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::session::Signed;
use crate::{PageError, Ui};

/// The templates, by name, as compiled in.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("sign_in.html", include_str!("../templates/sign_in.html")),
    ("overview.html", include_str!("../templates/overview.html")),
    ("services.html", include_str!("../templates/services.html")),
    ("service.html", include_str!("../templates/service.html")),
    ("graph.html", include_str!("../templates/graph.html")),
    ("queues.html", include_str!("../templates/queues.html")),
    ("tasks.html", include_str!("../templates/tasks.html")),
    ("task.html", include_str!("../templates/task.html")),
    (
        "schedules.html",
        include_str!("../templates/schedules.html"),
    ),
    ("schedule.html", include_str!("../templates/schedule.html")),
    ("alerts.html", include_str!("../templates/alerts.html")),
    ("alert.html", include_str!("../templates/alert.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    ("keys.html", include_str!("../templates/keys.html")),
    ("nodes.html", include_str!("../templates/nodes.html")),
    ("node.html", include_str!("../templates/node.html")),
    (
        "pipelines.html",
        include_str!("../templates/pipelines.html"),
    ),
    ("pipeline.html", include_str!("../templates/pipeline.html")),
    (
        "pipeline_run.html",
        include_str!("../templates/pipeline_run.html"),
    ),
    (
        "pipeline_dag.html",
        include_str!("../templates/pipeline_dag.html"),
    ),
];

/// Scripts and styles come from this origin only; nothing is framed, and forms post here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The compiled templates.
pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compiles every template. They are part of the binary, so one that does not compile is
    /// a build defect that the tests catch; it is logged and answered as an error page.
    pub(crate) fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(error) = env.add_template(name, source) {
                tracing::error!(template = name, %error, "a dashboard template does not compile");
            }
        }
        env.add_filter("state_mark", state_mark);
        Self { env }
    }

    fn render(&self, name: &str, ctx: Value) -> Result<String, PageError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| PageError::Internal(format!("rendering {name} failed: {e:#}")))
    }
}

/// The shape beside a state's colour, so state reads without colour too.
fn state_mark(state: &str) -> &'static str {
    match state {
        "up" | "ok" | "succeeded" | "resolved" => "●",
        "running" => "◔",
        "degraded" | "late" | "warning" => "◆",
        "down" | "failed" | "dead" | "firing" | "critical" | "overdue" => "▲",
        "impacted" => "◐",
        _ => "○",
    }
}

/// A page to show: its template, title, which navigation entry it is, and its own context.
pub(crate) struct Page<'a, C: Serialize> {
    /// The template's name.
    pub template: &'a str,
    /// The document's title.
    pub title: String,
    /// The navigation entry it belongs to.
    pub nav: &'a str,
    /// Whether it follows the event stream.
    pub live: bool,
    /// What the template shows.
    pub data: C,
}

impl Ui {
    /// A path below the base path, for links and redirects.
    pub(crate) fn link(&self, path: &str) -> String {
        format!("{}{path}", self.options.base_path)
    }

    /// The base path for templates: checked when the config was read (letters, digits, `-`,
    /// `_`, `.` and `/` only), so it is written as it is rather than entity-escaped.
    fn base_value(&self) -> Value {
        Value::from_safe_string(self.options.base_path.clone())
    }

    /// Each asset's URL by role, written as it is: built from the checked base path and
    /// names of our own.
    fn asset_values(&self) -> Value {
        Value::from_pairs(
            crate::assets::urls(&self.options.base_path)
                .into_iter()
                .map(|(role, url)| (role, Value::from_safe_string(url))),
        )
    }

    /// Renders `page` for `signed` with the context every page has.
    pub(crate) fn render<C: Serialize>(
        &self,
        signed: &Signed,
        page: Page<'_, C>,
    ) -> Result<Response, PageError> {
        let ctx = context! {
            base => self.base_value(),
            title => page.title,
            nav => page.nav,
            live => page.live,
            csrf => signed.session.csrf.clone(),
            me => Serde(&signed.principal),
            may_operate => signed.may_operate(),
            is_admin => signed.is_admin(),
            assets => self.asset_values(),
            event_types => Serde(steward_wire::events::EVENT_TYPES),
            data => Serde(&page.data),
        };
        let html = self.pages.render(page.template, ctx)?;
        Ok(html_response(StatusCode::OK, html))
    }

    /// Renders a page nobody is signed in to (sign-in itself).
    pub(crate) fn render_public(
        &self,
        status: StatusCode,
        template: &str,
        ctx: Value,
    ) -> Result<Response, PageError> {
        let ctx = context! {
            base => self.base_value(),
            assets => self.asset_values(),
            ..ctx
        };
        Ok(html_response(status, self.pages.render(template, ctx)?))
    }

    /// The answer to a page request: the page, or what its error calls for.
    pub(crate) fn respond(&self, result: Result<Response, PageError>) -> Response {
        let error = match result {
            Ok(response) => return response,
            Err(error) => error,
        };
        if let PageError::SignIn { next } = &error {
            let next = steward_wire::paths::encode(next);
            return Redirect::to(&self.link(&format!("/sign-in?next={next}"))).into_response();
        }
        if matches!(error, PageError::Internal(_)) {
            tracing::error!(%error, "a dashboard page failed");
        }
        let status = error.status();
        let ctx = context! {
            title => error.title(),
            message => error.to_string(),
            status => status.as_u16(),
        };
        match self.render_public(status, "error.html", ctx) {
            Ok(response) => response,
            Err(_) => (status, error.to_string()).into_response(),
        }
    }
}

/// An HTML answer with the headers every page carries: no caching (pages hold what only this
/// key may see), no sniffing, no framing, scripts and styles from here only.
pub(crate) fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let mut env = Environment::new();
        env.add_filter("state_mark", state_mark);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn every_state_has_a_shape() {
        for state in ["up", "down", "degraded", "impacted", "unknown"] {
            assert!(!state_mark(state).is_empty());
        }
        assert_ne!(state_mark("up"), state_mark("down"));
        assert_ne!(state_mark("down"), state_mark("impacted"));
    }
}
