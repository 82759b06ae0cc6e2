//! The registry: `[[workspaces]]`, the `[[dependencies]]` between them and `[[services]]`,
//! and the workspace references other sections check against it.

use std::collections::{BTreeMap, HashMap, HashSet};

use steward_core::{Dependency, DependencyId, Repo, Service, Workspace, WorkspaceStatus};

use crate::checks::ServiceSite;
use crate::readers::{first_declaration, literal, name_field};
use crate::walk::{Cx, Fields, Span, Spanned, did_you_mean, url_problem};

const WORKSPACE_KEYS: &[&str] = &["key", "description", "owner", "status", "labels", "repo"];
const REPO_KEYS: &[&str] = &["name", "path", "remote"];
const DEPENDENCY_KEYS: &[&str] = &["from", "to", "type", "note"];
const SERVICE_KEYS: &[&str] = &["name", "workspace", "url", "node", "labels"];

/// The declared workspaces by key, each with where its key is written.
pub(crate) type Workspaces = BTreeMap<String, (Workspace, Span)>;

/// Reads `[[workspaces]]`; a key declared twice keeps its first declaration.
pub(crate) fn read_workspaces(cx: &mut Cx<'_>, root: &Fields<'_>) -> Workspaces {
    let mut workspaces = BTreeMap::new();
    for (i, (table, span)) in root.tables(cx, "workspaces").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("workspaces[{i}]"), span, WORKSPACE_KEYS);
        let key = name_field(cx, &t, "key");
        let mut workspace = Workspace::new(key.as_ref().map_or("", |k| k.value.as_str()));
        workspace.description = t.string(cx, "description").map(Spanned::kept);
        workspace.owner = t.string(cx, "owner").map(Spanned::kept);
        workspace.status = t
            .choice(cx, "status", &WorkspaceStatus::ALL.map(|s| (s.as_str(), s)))
            .map_or(WorkspaceStatus::Active, |s| s.value);
        workspace.labels = t.labels(cx, "labels");
        workspace.repo = read_repo(cx, &t);
        let Some(key) = key else { continue };
        if let Some((_, first)) = workspaces.get(&key.value) {
            let first = cx.locate(first);
            cx.error(
                &key.span,
                format!(
                    "`{}`: duplicate workspace `{}` (first declared at {first})",
                    t.field("key"),
                    key.value
                ),
            );
            continue;
        }
        workspaces.insert(key.value, (workspace, key.span));
    }
    workspaces
}

/// A workspace's `repo`, or `None` when it is absent or says nothing.
fn read_repo(cx: &mut Cx<'_>, workspace: &Fields<'_>) -> Option<Repo> {
    let item = workspace.item("repo")?;
    let t = Fields::open_item(cx, item, workspace.field("repo"), REPO_KEYS)?;
    let repo = Repo {
        name: t.string(cx, "name").map(Spanned::kept),
        path: t.string(cx, "path").map(Spanned::kept),
        remote: t.string(cx, "remote").map(Spanned::kept),
    };
    (!repo.is_empty()).then_some(repo)
}

/// Checks that a field names a declared workspace, suggesting the closest one if it does not.
pub(crate) fn workspace_ref(
    cx: &mut Cx<'_>,
    table: &Fields<'_>,
    key: &str,
    value: Spanned<String>,
    workspaces: &Workspaces,
) -> Option<String> {
    let value = literal(cx, table, key, value)?;
    if workspaces.contains_key(&value.value) {
        return Some(value.value);
    }
    let known: Vec<&str> = workspaces.keys().map(String::as_str).collect();
    let hint = did_you_mean(&value.value, &known).unwrap_or_default();
    cx.error(
        &value.span,
        format!(
            "`{}`: unknown workspace `{}`{hint}",
            table.field(key),
            value.value
        ),
    );
    None
}

/// Reads `[[dependencies]]` between declared workspaces; an edge declared twice is merged
/// into the first, with a warning.
pub(crate) fn read_dependencies(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    workspaces: &Workspaces,
) -> Vec<Dependency> {
    let mut seen: HashMap<DependencyId, Span> = HashMap::new();
    let mut dependencies = Vec::new();
    for (i, (table, span)) in root.tables(cx, "dependencies").into_iter().enumerate() {
        let t = Fields::open(
            cx,
            table,
            format!("dependencies[{i}]"),
            span.clone(),
            DEPENDENCY_KEYS,
        );
        let from = t
            .required_string(cx, "from")
            .and_then(|v| workspace_ref(cx, &t, "from", v, workspaces));
        let to = t
            .required_string(cx, "to")
            .and_then(|v| workspace_ref(cx, &t, "to", v, workspaces));
        let kind = name_field(cx, &t, "type");
        let note = t.string(cx, "note").map(Spanned::kept);
        let (Some(from), Some(to), Some(kind)) = (from, to, kind) else {
            continue;
        };
        if from == to {
            cx.error(
                &span,
                format!("`dependencies[{i}]`: workspace `{from}` cannot depend on itself"),
            );
            continue;
        }
        let dependency = Dependency {
            from,
            to,
            kind: kind.value,
            note,
        };
        let id = dependency.id();
        if let Some(first) = seen.get(&id) {
            let first = cx.locate(first);
            cx.warning(
                &span,
                format!("`dependencies[{i}]`: duplicate edge {id} (first declared at {first}); merged into the first"),
            );
            continue;
        }
        seen.insert(id, span);
        dependencies.push(dependency);
    }
    dependencies
}

/// The services, the names of those whose `url` was written but refused (so that executors
/// naming them do not report a second, misleading problem), and what checks need to know of
/// each (in file order).
pub(crate) fn read_services(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    workspaces: &Workspaces,
) -> (Vec<Service>, HashSet<String>, Vec<ServiceSite>) {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut services = Vec::new();
    let mut bad_urls = HashSet::new();
    let mut sites = Vec::new();
    for (i, (table, span)) in root.tables(cx, "services").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("services[{i}]"), span, SERVICE_KEYS);
        let name = name_field(cx, &t, "name");
        let mut service = Service::new(name.as_ref().map_or("", |n| n.value.as_str()));
        service.workspace = t
            .string(cx, "workspace")
            .and_then(|v| workspace_ref(cx, &t, "workspace", v, workspaces));
        let url = t.string(cx, "url");
        service.url = url.clone().and_then(|u| checked_url(cx, &t, u));
        let node = t.string(cx, "node");
        service.node = node.clone().map(Spanned::kept);
        service.labels = t.labels(cx, "labels");
        let Some(name) = name else { continue };
        let url_refused = service.url.is_none() && t.item("url").is_some();
        if url_refused {
            bad_urls.insert(name.value.clone());
        }
        let site = ServiceSite {
            name: name.value.clone(),
            name_span: name.span.clone(),
            name_field: t.field("name"),
            node,
            node_field: t.field("node"),
            url: url.filter(|_| service.url.is_some()),
            url_refused,
        };
        if first_declaration(cx, &mut seen, &t, "service", name) {
            services.push(service);
            sites.push(site);
        }
    }
    (services, bad_urls, sites)
}

/// A service's `url`, or `None` after reporting why it is not a URL.
fn checked_url(cx: &mut Cx<'_>, t: &Fields<'_>, raw: Spanned<String>) -> Option<String> {
    match url_problem(&raw.value, raw.shown()) {
        None => Some(raw.kept()),
        Some(problem) => {
            cx.error(&raw.span, format!("`{}`: {problem}", t.field("url")));
            None
        }
    }
}
