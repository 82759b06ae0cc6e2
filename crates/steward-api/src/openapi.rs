//! The API's OpenAPI 3.1 document, generated from the route table so that it cannot drift from
//! what is served: every route of [`crate::routes::table`] is one operation, with its summary,
//! its path parameters (from the `{name}` segments of its template), its query (from the
//! handler's query type), the refusals its access rule and inputs make possible, the security
//! it needs, and its access rule as `x-steward-access`.
//!
//! Every answer and body is a wire type (`steward-wire`), described by that type's schema,
//! derived from its code.
//!
//! The document is written once per process, on a thread of its own started as the router is
//! built (so start-up does not wait for it), and served as bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::Method;
use serde_json::{Value, json};
use steward_wire::error::ErrorBody;
use steward_wire::events::{Reset, StreamEvent};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::info::{InfoBuilder, LicenseBuilder};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, Paths,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{
    AnyOfBuilder, ComponentsBuilder, ObjectBuilder, Ref, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{OpenApi, OpenApiBuilder, RefOr, Required};

use crate::access::Access;
use crate::describe::{Answer, Schemas, component};
use crate::routes::{RouteSpec, table};

/// The names of the security schemes a keyed route takes (either one).
const BEARER: &str = "bearer";
const API_KEY: &str = "api_key";

/// The name of the error schema (the wire type [`ErrorBody`]).
const ERROR: &str = "Error";

/// The tags operations are grouped by, with what each covers.
const TAGS: &[(&str, &str)] = &[
    ("meta", "What is serving, and this document."),
    (
        "health",
        "Liveness and readiness of the server itself, and which instance leads what.",
    ),
    ("metrics", "Prometheus metrics."),
    ("events", "The live event stream."),
    ("keys", "API keys, and who is calling."),
    ("registry", "Workspaces, their dependencies and the graph."),
    ("services", "Services and their health checks."),
    ("config", "The config file in force."),
    ("audit", "The audit trail."),
    ("tasks", "The task queue: tasks and queues."),
    ("schedules", "Schedules and heartbeats."),
    (
        "pipelines",
        "Pipelines: multi-step work, its runs and their timelines.",
    ),
    (
        "fleet",
        "Nodes, their join tokens, and what their agents register and report.",
    ),
    (
        "alerts",
        "Alerts, acknowledgements, notifications and silences.",
    ),
    (
        "alertmanager",
        "Alertmanager's API v2, for amtool, Grafana and Prometheus.",
    ),
];

/// The tag of a route, by its path: the part of the API it belongs to.
pub(crate) fn tag(path: &str) -> &'static str {
    match path {
        p if p == "/" || p == steward_wire::paths::OPENAPI.template() => return "meta",
        "/healthz" | "/readyz" => return "health",
        "/metrics" => return "metrics",
        _ => {}
    }
    if path.starts_with("/api/v2/") {
        return "alertmanager";
    }
    if path.starts_with("/badge/") {
        return "services";
    }
    let area = path
        .strip_prefix("/api/v1/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    match area {
        "events" => "events",
        "leadership" => "health",
        "whoami" | "keys" => "keys",
        "workspaces" | "graph" => "registry",
        "services" | "checks" => "services",
        "config" => "config",
        "audit" => "audit",
        "tasks" | "queues" => "tasks",
        "schedules" | "heartbeats" => "schedules",
        "pipelines" | "pipeline-runs" => "pipelines",
        "alerts" | "notifications" | "silences" => "alerts",
        "nodes" | "agent" => "fleet",
        _ => "other",
    }
}

/// A stable operation id from a route's method and path: `get_api_v1_tasks_id`.
pub fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    let words: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            segment
                .chars()
                .filter(|c| !matches!(c, '{' | '}'))
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    if words.is_empty() {
        id.push_str("_root");
    }
    for word in words {
        id.push('_');
        id.push_str(&word);
    }
    id
}

/// A query parameter as a query string holds it: absent or a value, never `null` (which is
/// how an optional field's schema says "absent" in a JSON body).
fn never_null(mut parameter: Parameter) -> Parameter {
    if let Some(RefOr::T(Schema::Object(object))) = &mut parameter.schema
        && let SchemaType::Array(types) = &object.schema_type
    {
        let values: Vec<Type> = types
            .iter()
            .filter(|t| **t != Type::Null)
            .cloned()
            .collect();
        if let [one] = values.as_slice() {
            object.schema_type = SchemaType::Type(one.clone());
        }
    }
    parameter
}

/// The path parameters of a template: the names of its `{name}` segments.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

fn http_method(method: &Method) -> Option<HttpMethod> {
    Some(match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        Method::TRACE => HttpMethod::Trace,
        _ => return None,
    })
}

/// Who may call a route, as a sentence.
fn access_sentence(access: Access) -> String {
    match access {
        Access::Public => "Public: anyone may call it, without a key.".to_owned(),
        Access::Role(role) => format!(
            "Needs a key with role `{role}` or above. A key scoped to a workspace may call it \
             and is held to its workspace."
        ),
        Access::Unscoped(role) => format!(
            "Needs a key with role `{role}` or above and no workspace scope (it acts on \
             everything)."
        ),
        Access::Workspace(role, param) => format!(
            "Needs a key with role `{role}` or above, unscoped or scoped to the workspace \
             `{{{param}}}` names."
        ),
        Access::Node(param) => format!(
            "Needs the `agent` key of the node `{{{param}}}` names; no other key, whatever its \
             role."
        ),
    }
}

/// A route's access rule as `x-steward-access`.
fn access_extension(access: Access) -> Value {
    let (role, unscoped, param) = match access {
        Access::Public => (None, false, None),
        Access::Role(role) => (Some(role), false, None),
        Access::Unscoped(role) => (Some(role), true, None),
        Access::Workspace(role, param) => (Some(role), false, Some(param)),
        Access::Node(_) => (Some(steward_core::Role::Agent), false, None),
    };
    json!({
        "role": role.map(|r| r.as_str()),
        "unscoped": unscoped,
        "workspace_param": param,
        "node_param": access.node_param(),
    })
}

/// What a refusal means, by status.
fn refusal(status: u16) -> &'static str {
    match status {
        400 => {
            "Refused as the caller's mistake: `invalid_path`, `invalid_query`, `invalid_body`, \
             `invalid_header`, `invalid_input`, or a code of the route's own."
        }
        401 => "No valid API key (`unauthenticated`, with `WWW-Authenticate: Bearer`).",
        403 => "The key may not do this (`forbidden`).",
        404 => "Nothing by that name, or nothing the key may see (`not_found`).",
        409 => "The current state refuses it (`conflict`, `invalid_state`, or the route's own).",
        413 => "The body is larger than the route takes (`payload_too_large`).",
        422 => {
            "The config file was rejected (`invalid_config`, one problem per line of `details`)."
        }
        429 => "Too many requests from this key or address (`rate_limited`, with `Retry-After`).",
        500 => "The database file is damaged (`store_corrupt`); trying again does not help.",
        503 => {
            "Not now: the database did not answer (`store_unavailable`), the key could not be \
             checked yet (`auth_busy`), or this instance does not serve it; try again later."
        }
        _ => "Refused.",
    }
}

fn success(status: u16) -> &'static str {
    match status {
        201 => "Created.",
        _ => "OK.",
    }
}

/// The operation of one route.
fn operation(route: &RouteSpec, schemas: &mut Schemas) -> Operation {
    let doc = &route.doc;
    let keyed = route.access != Access::Public;
    let in_path = path_params(route.path);
    let mut parameters: Vec<Parameter> = in_path
        .iter()
        .map(|name| {
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        })
        .collect();
    if let Some(query) = doc.query {
        parameters.extend(query().into_iter().map(never_null));
    }
    if let Some((name, description)) = doc.header {
        parameters.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
    }

    let mut responses = ResponsesBuilder::new();
    for &status in doc.ok {
        let response = ResponseBuilder::new().description(success(status));
        let response =
            match doc.answer.unwrap_or(Answer::Empty) {
                Answer::Json(payload) => response.content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(payload.schema(schemas)))
                        .build(),
                ),
                Answer::EventStream => {
                    let data = AnyOfBuilder::new()
                        .item(component::<StreamEvent>(schemas))
                        .item(component::<Reset>(schemas))
                        .build();
                    let extensions: Extensions = [(
                        "x-steward-event-data".to_owned(),
                        serde_json::to_value(data).unwrap_or(Value::Null),
                    )]
                    .into_iter()
                    .collect();
                    response.content(
                    "text/event-stream",
                    ContentBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new().schema_type(Type::String).description(Some(
                                "Server-Sent Events, without end; the `data` of each event is \
                                 the JSON `x-steward-event-data` describes.",
                            )),
                        ))
                        .extensions(Some(extensions))
                        .build(),
                )
                }
                Answer::Text => response.content(
                    "text/plain",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                ),
                Answer::Svg => response.content(
                    "image/svg+xml",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                ),
                Answer::Empty => response,
            };
        responses = responses.response(status.to_string(), response.build());
    }

    let mut refusals: BTreeSet<u16> = doc.refusals.iter().copied().collect();
    if !parameters.is_empty() || doc.body.is_some() {
        refusals.insert(400);
    }
    if keyed {
        refusals.extend([401, 403, 429, 503]);
    }
    if !in_path.is_empty() {
        refusals.insert(404);
    }
    if doc.body.is_some() {
        refusals.insert(413);
    }
    for status in refusals {
        let error = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ERROR)))
            .build();
        responses = responses.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(refusal(status))
                .content("application/json", error)
                .build(),
        );
    }

    let request_body = doc.body.map(|(payload, required)| {
        RequestBodyBuilder::new()
            .required(Some(if required {
                Required::True
            } else {
                Required::False
            }))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(payload.schema(schemas)))
                    .build(),
            )
            .build()
    });

    let mut description = access_sentence(route.access);
    if let Some(note) = doc.note {
        description.push(' ');
        description.push_str(note);
    }
    let extensions: Extensions = [(
        "x-steward-access".to_owned(),
        access_extension(route.access),
    )]
    .into_iter()
    .collect();
    let security = keyed.then(|| {
        vec![
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::new(API_KEY, Vec::<String>::new()),
        ]
    });

    OperationBuilder::new()
        .operation_id(Some(operation_id(&route.method, route.path)))
        .summary(Some(route.summary))
        .description(Some(description))
        .tag(tag(route.path))
        .parameters((!parameters.is_empty()).then_some(parameters))
        .request_body(request_body)
        .responses(responses.build())
        .securities(security)
        .extensions(Some(extensions))
        .build()
}

/// The named schemas, each once (the first of a name wins; a unit test checks that every
/// schema of a name is the same).
fn named_schemas(schemas: Schemas) -> BTreeMap<String, RefOr<Schema>> {
    let mut named = BTreeMap::new();
    for (name, schema) in schemas {
        named.entry(name).or_insert(schema);
    }
    named
}

/// The paths of the table, and every named schema they refer to (as collected, repeats
/// included).
fn paths_and_schemas() -> (Paths, Schemas) {
    let mut schemas: Schemas = Vec::new();
    component::<ErrorBody>(&mut schemas);
    let mut paths = Paths::new();
    for route in table() {
        let Some(method) = http_method(&route.method) else {
            continue;
        };
        let operation = operation(&route, &mut schemas);
        paths.add_path_operation(route.path, vec![method], operation);
    }
    (paths, schemas)
}

/// The whole document, built from [`table`].
pub fn document() -> OpenApi {
    let (paths, schemas) = paths_and_schemas();
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("stw_…")
                    .description(Some(
                        "An API key as `Authorization: Bearer stw_…` (the scheme in any case).",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "An API key as `X-Api-Key: stw_…`.",
            ))),
        )
        .build();
    components.schemas = named_schemas(schemas);
    let info = InfoBuilder::new()
        .title("Steward")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The HTTP API of Steward, a control plane for self-hosted AI-agent platforms. This \
             document is generated from the server's route table: every route is one operation, \
             with the security and role it needs (`x-steward-access`), and every body it takes \
             and answers is a named schema. Every error answer is an `Error`.",
        ))
        .license(Some(
            LicenseBuilder::new()
                .name("Apache-2.0")
                .identifier(Some("Apache-2.0"))
                .build(),
        ))
        .build();
    let tags = TAGS
        .iter()
        .map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        })
        .collect::<Vec<_>>();
    OpenApiBuilder::new()
        .info(info)
        .paths(paths)
        .components(Some(components))
        .tags(Some(tags))
        .build()
}

/// Why the document could not be written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenApiError {
    /// It did not serialize (which no document built from the table does).
    #[error("the OpenAPI document could not be serialized: {0}")]
    Serialize(String),
}

/// The document's bytes, once [`json`] has written them.
static JSON: OnceLock<Result<Bytes, OpenApiError>> = OnceLock::new();

/// The document's bytes if they are written already: callers after the first need no thread.
pub(crate) fn written() -> Option<Result<Bytes, OpenApiError>> {
    JSON.get().cloned()
}

/// The document as JSON bytes, written on first use and kept: the keys of every object in
/// order, so the same table always gives the same bytes.
pub fn json() -> Result<Bytes, OpenApiError> {
    JSON.get_or_init(|| {
        // Through a `Value`, whose objects keep their keys sorted (utoipa keeps extensions in
        // a hash map).
        serde_json::to_value(document())
            .and_then(|value| serde_json::to_vec(&value))
            .map(Bytes::from)
            .map_err(|e| OpenApiError::Serialize(e.to_string()))
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Instant;

    use super::*;

    /// The document as a JSON value.
    fn value() -> Value {
        serde_json::from_slice(&json().unwrap()).unwrap()
    }

    /// Every `(method, path)` of the document's operations.
    fn operations(document: &Value) -> BTreeSet<(String, String)> {
        let mut found = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                found.insert((method.to_uppercase(), path.clone()));
            }
        }
        found
    }

    #[test]
    fn every_route_is_an_operation_and_every_operation_a_route() {
        let routes: BTreeSet<(String, String)> = table()
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect();
        assert_eq!(routes.len(), table().len(), "a route is declared twice");
        let document = value();
        let operations = operations(&document);
        let missing: Vec<_> = routes.difference(&operations).collect();
        let extra: Vec<_> = operations.difference(&routes).collect();
        assert!(missing.is_empty(), "routes with no operation: {missing:?}");
        assert!(extra.is_empty(), "operations with no route: {extra:?}");
    }

    #[test]
    fn operations_have_stable_unique_ids_a_summary_a_known_tag_and_their_access_rule() {
        let document = value();
        let declared: BTreeSet<&str> = TAGS.iter().map(|(name, _)| *name).collect();
        let mut ids = BTreeSet::new();
        for route in table() {
            let method = route.method.as_str().to_ascii_lowercase();
            let operation = &document["paths"][route.path][&method];
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "{id} twice");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{id}"
            );
            let summary = operation["summary"].as_str().unwrap();
            assert!(
                !summary.is_empty() && !summary.contains('\n') && summary.len() <= 80,
                "{id}: {summary:?}"
            );
            let tag = operation["tags"][0].as_str().unwrap();
            assert!(declared.contains(tag), "{id}: tag {tag}");
            let access = &operation["x-steward-access"];
            assert_eq!(
                access["role"].is_null(),
                route.access == Access::Public,
                "{id}"
            );
            assert_eq!(
                operation.get("security").is_none(),
                route.access == Access::Public,
                "{id}: security"
            );
            let responses = operation["responses"].as_object().unwrap();
            if route.access != Access::Public {
                for status in ["401", "403", "429", "503"] {
                    assert!(responses.contains_key(status), "{id}: no {status}");
                }
            }
            for (status, response) in responses {
                if !status.starts_with('2') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{id} {status}"
                    );
                }
            }
        }
        assert_eq!(
            operation_id(&Method::GET, "/api/v1/tasks/{id}"),
            "get_api_v1_tasks_id"
        );
        assert_eq!(operation_id(&Method::GET, "/"), "get_root");
        assert_eq!(
            operation_id(&Method::DELETE, "/api/v2/silence/{silenceID}"),
            "delete_api_v2_silence_silenceid"
        );
    }

    #[test]
    fn path_parameters_come_from_the_template() {
        let document = value();
        let operation = &document["paths"]["/api/v2/silence/{silenceID}"]["delete"];
        assert_eq!(
            operation["parameters"],
            json!([{"name": "silenceID", "in": "path", "required": true, "schema": {"type": "string"}}])
        );
        let tasks = &document["paths"]["/api/v1/tasks"]["get"]["parameters"];
        let names: Vec<&str> = tasks
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "after",
                "limit",
                "queue",
                "status",
                "kind",
                "outcome",
                "workspace"
            ]
        );
        assert_eq!(
            tasks[2]["schema"],
            json!({"type": "string"}),
            "absent, never null"
        );
    }

    #[test]
    fn the_same_name_always_names_the_same_schema() {
        let (_, schemas) = paths_and_schemas();
        let mut seen: BTreeMap<String, Value> = BTreeMap::new();
        for (name, schema) in schemas {
            let schema = serde_json::to_value(schema).unwrap();
            if let Some(first) = seen.get(&name) {
                assert_eq!(first, &schema, "two schemas named {name}");
            }
            seen.insert(name, schema);
        }
    }

    #[test]
    fn the_document_is_a_valid_openapi_3_1_document() {
        let schema: Value =
            serde_json::from_str(include_str!("../tests/data/openapi-3.1-schema.json")).unwrap();
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        let document = value();
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        // The validator does see a broken document.
        let mut broken = document.clone();
        broken["paths"]["/healthz"]["get"]["responses"] = json!("none");
        assert!(!validator.is_valid(&broken));
    }

    /// Every schema of the document: the named ones and those written in place.
    fn schemas_in(value: &Value, key: Option<&str>, found: &mut Vec<Value>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "schema" && key != Some("properties") {
                        found.push(v.clone());
                    }
                    schemas_in(v, Some(k), found);
                }
            }
            Value::Array(items) => {
                for item in items {
                    schemas_in(item, None, found);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_schema_is_a_valid_json_schema_2020_12() {
        let document = value();
        let mut schemas: Vec<Value> = document["components"]["schemas"]
            .as_object()
            .unwrap()
            .values()
            .cloned()
            .collect();
        assert!(schemas.len() > 10, "{schemas:?}");
        schemas_in(&document["paths"], None, &mut schemas);
        for schema in &schemas {
            let errors: Vec<String> = jsonschema::draft202012::meta::validator()
                .iter_errors(schema)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{schema}: {}", errors.join("; "));
        }
        assert!(!jsonschema::draft202012::meta::is_valid(
            &json!({"type": "no such type"})
        ));
    }

    #[test]
    fn every_route_declares_its_answer_and_json_is_always_a_named_schema() {
        let document = value();
        for route in table() {
            assert!(
                route.doc.answer.is_some(),
                "{} {} declares no answer",
                route.method,
                route.path
            );
            let method = route.method.as_str().to_ascii_lowercase();
            let operation = &document["paths"][route.path][&method];
            let mut json = vec![&operation["requestBody"]["content"]["application/json"]["schema"]];
            for status in route.doc.ok {
                json.push(
                    &operation["responses"][status.to_string()]["content"]["application/json"]
                        ["schema"],
                );
            }
            if route.path == steward_wire::paths::OPENAPI.template() {
                continue;
            }
            for schema in json.into_iter().filter(|s| !s.is_null()) {
                let named = schema["$ref"].is_string() || schema["items"]["$ref"].is_string();
                assert!(named, "{} {}: {schema}", route.method, route.path);
            }
        }
        let alerts = &document["paths"]["/api/v2/alerts"]["get"]["responses"]["200"];
        assert_eq!(
            alerts["content"]["application/json"]["schema"],
            json!({"type": "array", "items": {"$ref": "#/components/schemas/GettableAlert"}})
        );
        let events = &document["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"];
        assert_eq!(
            events["text/event-stream"]["x-steward-event-data"]["anyOf"][0]["$ref"],
            "#/components/schemas/StreamEvent"
        );
    }

    #[test]
    fn the_same_table_gives_the_same_bytes() {
        let once = serde_json::to_vec(&serde_json::to_value(document()).unwrap()).unwrap();
        assert_eq!(once, json().unwrap());
    }

    /// What writing the document costs: run with `cargo test --release -p steward-api --lib
    /// openapi -- --nocapture` for a release figure.
    #[test]
    fn openapi_document_generation_time() {
        let mut runs: Vec<f64> = (0..21)
            .map(|_| {
                let started = Instant::now();
                let bytes = serde_json::to_vec(&serde_json::to_value(document()).unwrap()).unwrap();
                let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                assert!(bytes.len() > 10_000);
                elapsed
            })
            .collect();
        // The first run is what start-up pays (nothing warmed yet).
        let first = runs[0];
        runs.sort_by(f64::total_cmp);
        println!(
            "OpenAPI document: {} bytes; first {first:.3} ms, median {:.3} ms of {} runs (min \
             {:.3}, max {:.3})",
            json().unwrap().len(),
            runs[runs.len() / 2],
            runs.len(),
            runs[0],
            runs[runs.len() - 1]
        );
    }
}
