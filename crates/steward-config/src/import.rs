//! `steward import csv`: turns registries kept as CSV (the `workspaces.csv` /
//! `workspace_dependencies.csv` layout many platforms grew by hand) into a `steward.toml`.
//!
//! Workspace columns: `workspace_key` (required), `status`, `description`, `owner`,
//! `repo_name`, `repo_path`, `repo_remote`; any other column becomes a label.
//! Dependency columns: `from_workspace`, `to_workspace`, `dependency_type` (required), `notes`.
//! Service columns: `name` (required), `workspace`, `url`, `node`; any other column is a label.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use steward_core::registry::Labels;
use steward_core::{Dependency, DependencyId, Repo, Service, Workspace, WorkspaceStatus};

use crate::file::{FileError, read_regular};
use crate::walk::{is_name, url_problem};

/// One CSV input: its name (for messages) and its bytes.
pub struct CsvInput<'a> {
    /// The file, as messages name it.
    pub name: String,
    /// Its content.
    pub bytes: &'a [u8],
}

/// What an import produced, in the order of the input files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Workspaces, in file order.
    pub workspaces: Vec<Workspace>,
    /// Distinct dependency edges, in file order (duplicates merged into the first).
    pub dependencies: Vec<Dependency>,
    /// Services, in file order.
    pub services: Vec<Service>,
    /// `FILE:LINE: message` for each merged duplicate.
    pub warnings: Vec<String>,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read, or is not a regular file.
    #[error(transparent)]
    Read(#[from] FileError),
    /// The files have problems; each is `FILE:LINE: message`.
    #[error("{}", .problems.join("\n"))]
    Invalid {
        /// Every problem found.
        problems: Vec<String>,
    },
}

/// Reads and converts the CSV files at these paths.
pub fn import_files(
    workspaces: &Path,
    dependencies: &Path,
    services: Option<&Path>,
) -> Result<Imported, ImportError> {
    let read = |p: &Path| -> Result<Vec<u8>, ImportError> { Ok(read_regular(p, u64::MAX)?) };
    let ws = read(workspaces)?;
    let deps = read(dependencies)?;
    let svc = services.map(read).transpose()?;
    let input = |p: &Path, bytes| CsvInput {
        name: p.display().to_string(),
        bytes,
    };
    import(
        input(workspaces, &ws),
        input(dependencies, &deps),
        services.zip(svc.as_deref()).map(|(p, b)| input(p, b)),
    )
}

/// Converts CSV registries, reporting every problem with its file and line.
pub fn import(
    workspaces: CsvInput<'_>,
    dependencies: CsvInput<'_>,
    services: Option<CsvInput<'_>>,
) -> Result<Imported, ImportError> {
    let mut problems = Vec::new();
    let mut imported = Imported::default();
    let mut lines: HashMap<String, u64> = HashMap::new();
    for row in rows(&workspaces, &["workspace_key"], &mut problems) {
        if let Some(w) = workspace_from(&row, &workspaces.name, &mut problems) {
            if let Some(first) = lines.get(&w.key) {
                problems.push(format!(
                    "{}:{}: duplicate workspace `{}` (first on line {first})",
                    workspaces.name, row.line, w.key
                ));
                continue;
            }
            lines.insert(w.key.clone(), row.line);
            imported.workspaces.push(w);
        }
    }
    let required = ["from_workspace", "to_workspace", "dependency_type"];
    // Edge id -> (line of its first occurrence, index in `imported.dependencies`).
    let mut edges: HashMap<DependencyId, (u64, usize)> = HashMap::new();
    for row in rows(&dependencies, &required, &mut problems) {
        let Some(d) = dependency_from(&row, &dependencies.name, &lines, &mut problems) else {
            continue;
        };
        let id = d.id();
        if let Some(&(first, index)) = edges.get(&id) {
            let notes = merge_note(&mut imported.dependencies[index].note, d.note);
            imported.warnings.push(format!(
                "{}:{}: duplicate edge {id} (first on line {first}) merged{notes}",
                dependencies.name, row.line,
            ));
            continue;
        }
        edges.insert(id, (row.line, imported.dependencies.len()));
        imported.dependencies.push(d);
    }
    if let Some(services) = services {
        let mut seen: HashMap<String, u64> = HashMap::new();
        for row in rows(&services, &["name"], &mut problems) {
            let Some(s) = service_from(&row, &services.name, &lines, &mut problems) else {
                continue;
            };
            if let Some(first) = seen.insert(s.name.clone(), row.line) {
                problems.push(format!(
                    "{}:{}: duplicate service `{}` (first on line {first})",
                    services.name, row.line, s.name
                ));
                continue;
            }
            imported.services.push(s);
        }
    }
    if problems.is_empty() {
        Ok(imported)
    } else {
        Err(ImportError::Invalid { problems })
    }
}

/// Keeps both notes of a merged duplicate edge, so that nothing written in the CSV is lost;
/// says so in the warning's tail.
fn merge_note(kept: &mut Option<String>, other: Option<String>) -> &'static str {
    match (kept.as_mut(), other) {
        (_, None) => "",
        (Some(k), Some(o)) if *k == o => "",
        (Some(k), Some(o)) => {
            k.push_str("; ");
            k.push_str(&o);
            "; notes combined"
        }
        (None, Some(o)) => {
            *kept = Some(o);
            ""
        }
    }
}

/// One data row: its line number and its non-empty cells by column name.
struct Row {
    line: u64,
    cells: Vec<(String, String)>,
}

impl Row {
    fn take(&mut self, column: &str) -> Option<String> {
        let i = self.cells.iter().position(|(c, _)| c == column)?;
        Some(self.cells.remove(i).1)
    }
}

fn rows(input: &CsvInput<'_>, required: &[&str], problems: &mut Vec<String>) -> Vec<Row> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input.bytes);
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(e) => {
            problems.push(format!("{}: {}", input.name, csv_error(&e)));
            return Vec::new();
        }
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|r| !headers.iter().any(|h| h == r))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{}:1: missing column(s) {} (header is: {})",
            input.name,
            missing.join(", "),
            headers.join(",")
        ));
        return Vec::new();
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                if record.iter().any(|cell| cell.contains('\0')) {
                    problems.push(format!(
                        "{}:{line}: a cell contains a NUL character",
                        input.name
                    ));
                    continue;
                }
                let cells = headers
                    .iter()
                    .zip(record.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(h, v)| (h.clone(), v.to_owned()))
                    .collect();
                rows.push(Row { line, cells });
            }
            Err(e) => problems.push(format!("{}: {}", input.name, csv_error(&e))),
        }
    }
    rows
}

fn csv_error(e: &csv::Error) -> String {
    match e.position() {
        Some(p) => format!("line {}: {e}", p.line()),
        None => e.to_string(),
    }
}

fn named(
    value: Option<String>,
    what: &str,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    match value {
        Some(v) if is_name(&v) => Some(v),
        Some(v) => {
            problems.push(format!("{at}: {what} `{v}` is not a valid name"));
            None
        }
        None => {
            problems.push(format!("{at}: {what} is empty"));
            None
        }
    }
}

fn workspace_from(row: &Row, file: &str, problems: &mut Vec<String>) -> Option<Workspace> {
    let mut row = Row {
        line: row.line,
        cells: row.cells.clone(),
    };
    let at = format!("{file}:{}", row.line);
    let key = named(row.take("workspace_key"), "workspace_key", &at, problems)?;
    let mut w = Workspace::new(key);
    if let Some(status) = row.take("status") {
        match status.parse::<WorkspaceStatus>() {
            Ok(s) => w.status = s,
            Err(e) => problems.push(format!("{at}: {e}")),
        }
    }
    w.description = row.take("description");
    w.owner = row.take("owner");
    let repo = Repo {
        name: row.take("repo_name"),
        path: row.take("repo_path"),
        remote: row.take("repo_remote"),
    };
    w.repo = (!repo.is_empty()).then_some(repo);
    w.labels = labels(row, &at, problems);
    Some(w)
}

fn labels(row: Row, at: &str, problems: &mut Vec<String>) -> Labels {
    let mut labels = Labels::new();
    for (column, value) in row.cells {
        if is_name(&column) && column.starts_with(|c: char| c.is_ascii_alphabetic()) {
            labels.insert(column, value);
        } else {
            problems.push(format!(
                "{at}: column `{column}` cannot become a label name"
            ));
        }
    }
    labels
}

fn dependency_from(
    row: &Row,
    file: &str,
    workspaces: &HashMap<String, u64>,
    problems: &mut Vec<String>,
) -> Option<Dependency> {
    let mut row = Row {
        line: row.line,
        cells: row.cells.clone(),
    };
    let at = format!("{file}:{}", row.line);
    let from = named(row.take("from_workspace"), "from_workspace", &at, problems);
    let to = named(row.take("to_workspace"), "to_workspace", &at, problems);
    let kind = named(
        row.take("dependency_type"),
        "dependency_type",
        &at,
        problems,
    );
    let mut ok = true;
    for (column, ws) in [("from_workspace", &from), ("to_workspace", &to)] {
        if let Some(ws) = ws.as_ref().filter(|ws| !workspaces.contains_key(*ws)) {
            problems.push(format!(
                "{at}: {column} `{ws}` is not in the workspaces file"
            ));
            ok = false;
        }
    }
    let (from, to, kind) = (from?, to?, kind?);
    if from == to {
        problems.push(format!("{at}: workspace `{from}` cannot depend on itself"));
        return None;
    }
    ok.then(|| Dependency {
        from,
        to,
        kind,
        note: row.take("notes"),
    })
}

fn service_from(
    row: &Row,
    file: &str,
    workspaces: &HashMap<String, u64>,
    problems: &mut Vec<String>,
) -> Option<Service> {
    let mut row = Row {
        line: row.line,
        cells: row.cells.clone(),
    };
    let at = format!("{file}:{}", row.line);
    let mut s = Service::new(named(row.take("name"), "name", &at, problems)?);
    s.workspace = row.take("workspace");
    if let Some(ws) = s
        .workspace
        .as_ref()
        .filter(|ws| !workspaces.contains_key(*ws))
    {
        problems.push(format!(
            "{at}: workspace `{ws}` is not in the workspaces file"
        ));
        return None;
    }
    s.url = row.take("url");
    if let Some(problem) = s.url.as_deref().and_then(|u| url_problem(u, u)) {
        problems.push(format!("{at}: url {problem}"));
        return None;
    }
    s.node = row.take("node");
    s.labels = labels(row, &at, problems);
    Some(s)
}

/// Renders an import as `steward.toml` text, entries in input order, `header` as a leading
/// comment.
pub fn render_toml(imported: &Imported, header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    for w in &imported.workspaces {
        out.push_str("\n[[workspaces]]\n");
        field(&mut out, "key", Some(&w.key));
        field(&mut out, "description", w.description.as_ref());
        field(&mut out, "owner", w.owner.as_ref());
        field(&mut out, "status", Some(&w.status.as_str().to_owned()));
        if let Some(repo) = &w.repo {
            let pairs = [
                ("name", &repo.name),
                ("path", &repo.path),
                ("remote", &repo.remote),
            ];
            inline_table(
                &mut out,
                "repo",
                pairs
                    .iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.as_str()))),
            );
        }
        if !w.labels.is_empty() {
            inline_table(
                &mut out,
                "labels",
                w.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
        }
    }
    for d in &imported.dependencies {
        out.push_str("\n[[dependencies]]\n");
        field(&mut out, "from", Some(&d.from));
        field(&mut out, "to", Some(&d.to));
        field(&mut out, "type", Some(&d.kind));
        field(&mut out, "note", d.note.as_ref());
    }
    for s in &imported.services {
        out.push_str("\n[[services]]\n");
        field(&mut out, "name", Some(&s.name));
        field(&mut out, "workspace", s.workspace.as_ref());
        field(&mut out, "url", s.url.as_ref());
        field(&mut out, "node", s.node.as_ref());
        if !s.labels.is_empty() {
            inline_table(
                &mut out,
                "labels",
                s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
        }
    }
    out
}

/// A TOML string literal that reads back as `s`: `${` is escaped as `$${` so that CSV text is
/// never taken for a variable reference.
fn quoted(s: &str) -> String {
    toml_edit::Value::from(s.replace("${", "$${"))
        .to_string()
        .trim()
        .to_owned()
}

fn field(out: &mut String, key: &str, value: Option<&String>) {
    if let Some(v) = value {
        let _ = writeln!(out, "{key} = {}", quoted(v));
    }
}

fn inline_table<'a>(out: &mut String, key: &str, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    let body: Vec<String> = pairs
        .map(|(k, v)| format!("{} = {}", toml_edit::Key::new(k).display_repr(), quoted(v)))
        .collect();
    let _ = writeln!(out, "{key} = {{ {} }}", body.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str =
        "workspace_key,agent_key,repo_name,status\na,agent-a,repo-a,active\nb,,,paused\n";

    fn input(name: &str, text: &str) -> CsvInput<'static> {
        CsvInput {
            name: name.into(),
            bytes: Box::leak(text.as_bytes().to_vec().into_boxed_slice()),
        }
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let workspaces = dir.path().join("workspaces.csv");
        let dependencies = dir.path().join("deps.csv");
        std::fs::write(&workspaces, WS).unwrap();
        crate::test_support::mkfifo(&dependencies);
        let name = dependencies.display().to_string();
        let err = crate::test_support::within_seconds(move || {
            import_files(&workspaces, &dependencies, None)
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{name}: not a regular file (a FIFO)")
        );
    }

    #[test]
    fn merges_duplicate_edges_with_a_warning() {
        let deps = "from_workspace,to_workspace,dependency_type,notes\na,b,reads,x\na,b,reads,y\nb,a,reads,\n";
        let out = import(input("ws.csv", WS), input("deps.csv", deps), None).unwrap();
        assert_eq!(out.dependencies.len(), 2);
        assert_eq!(out.dependencies[0].note.as_deref(), Some("x; y"));
        assert_eq!(out.warnings.len(), 1);
        assert!(
            out.warnings[0]
                .starts_with("deps.csv:3: duplicate edge a -[reads]-> b (first on line 2)"),
            "{:?}",
            out.warnings
        );
        assert_eq!(
            out.workspaces[0]
                .labels
                .get("agent_key")
                .map(String::as_str),
            Some("agent-a")
        );
        assert_eq!(out.workspaces[1].status, WorkspaceStatus::Paused);
    }

    #[test]
    fn an_edge_to_a_missing_workspace_names_the_line() {
        let deps =
            "from_workspace,to_workspace,dependency_type,notes\na,b,reads,\nplatform,a,reads,\n";
        let err = import(input("ws.csv", WS), input("deps.csv", deps), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "deps.csv:3: from_workspace `platform` is not in the workspaces file"
        );
    }

    #[test]
    fn missing_columns_are_reported() {
        let err = import(
            input("ws.csv", "key,x\n"),
            input("d.csv", "from,to\n"),
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ws.csv:1: missing column(s) workspace_key"),
            "{text}"
        );
        assert!(
            text.contains(
                "d.csv:1: missing column(s) from_workspace, to_workspace, dependency_type"
            ),
            "{text}"
        );
    }

    proptest::proptest! {
        /// Whatever text a CSV cell holds (quotes, `${`, backslashes, control characters,
        /// non-ASCII), the rendered config reads back as exactly that text.
        #[test]
        fn any_cell_text_round_trips_through_the_rendered_config(
            description in "[^\u{0}]{0,40}",
            note in "[^\u{0}]{0,40}",
            label in "[^\u{0}]{0,40}",
        ) {
            let mut a = Workspace::new("a");
            a.description = Some(description);
            a.labels.insert("x".into(), label);
            let imported = Imported {
                workspaces: vec![a, Workspace::new("b")],
                dependencies: vec![Dependency { from: "a".into(), to: "b".into(), kind: "t".into(), note: Some(note) }],
                services: vec![],
                warnings: vec![],
            };
            let text = render_toml(&imported, "header\nwith two lines");
            let loaded = crate::parse_str("gen.toml", &text, &|_| None).unwrap();
            let expected = steward_core::Registry::new(imported.workspaces, imported.dependencies, imported.services);
            proptest::prop_assert_eq!(loaded.config.registry, expected);
        }
    }

    #[test]
    fn rendered_toml_is_a_valid_config_with_the_same_registry() {
        let deps = "from_workspace,to_workspace,dependency_type,notes\na,b,reads,\"quotes \"\" and \\ back ${HOME} $${X}\"\n";
        let svc = "name,workspace,url,node,tier\nnn,a,http://127.0.0.1:8000/health,vps,gold\n";
        let out = import(
            input("ws.csv", WS),
            input("d.csv", deps),
            Some(input("s.csv", svc)),
        )
        .unwrap();
        let text = render_toml(&out, "generated");
        let loaded = crate::parse_str("gen.toml", &text, &|_| None).unwrap();
        let expected = steward_core::Registry::new(out.workspaces, out.dependencies, out.services);
        assert_eq!(loaded.config.registry, expected);
    }
}
