//! How a route describes what it takes and answers: the vocabulary the route table is written
//! in, which the OpenAPI document turns into operations and schemas.

use utoipa::ToSchema;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr, Required};

/// Named schemas collected while the operations are written, for `components.schemas`.
pub(crate) type Schemas = Vec<(String, RefOr<Schema>)>;

/// Writes a body's schema, adding the named schemas it refers to.
pub(crate) type SchemaFn = fn(&mut Schemas) -> RefOr<Schema>;

/// A JSON body, as the document describes it: a wire type's schema (see [`typed`] and
/// [`list_of`]).
#[derive(Clone, Copy)]
pub(crate) struct Payload(SchemaFn);

impl Payload {
    pub(crate) fn schema(self, schemas: &mut Schemas) -> RefOr<Schema> {
        (self.0)(schemas)
    }
}

/// What a route answers when it succeeds.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    /// JSON.
    Json(Payload),
    /// An endless Server-Sent Events stream, each event's data a [`StreamEvent`] (or a
    /// [`Reset`]).
    EventStream,
    /// Plain text (Prometheus's format).
    Text,
    /// An SVG image.
    Svg,
    /// No body.
    Empty,
}

/// What a route takes and answers, declared beside it in the route table.
#[derive(Clone, Copy)]
pub(crate) struct Doc {
    /// Its query parameters.
    pub(crate) query: Option<fn() -> Vec<Parameter>>,
    /// A request header it reads, and what it means.
    pub(crate) header: Option<(&'static str, &'static str)>,
    /// Its JSON body, and whether one is required.
    pub(crate) body: Option<(Payload, bool)>,
    /// What it answers when it succeeds; every route says (a test holds the table to it).
    pub(crate) answer: Option<Answer>,
    /// The statuses of its success.
    pub(crate) ok: &'static [u16],
    /// Refusals of its own, besides those its access rule and inputs imply.
    pub(crate) refusals: &'static [u16],
    /// What else a reader should know.
    pub(crate) note: Option<&'static str>,
}

impl Default for Doc {
    fn default() -> Self {
        Self {
            query: None,
            header: None,
            body: None,
            answer: None,
            ok: &[200],
            refusals: &[],
            note: None,
        }
    }
}

/// The wire type `T`, referred to by name.
pub(crate) fn typed<T: ToSchema>() -> Payload {
    Payload(component::<T>)
}

/// A JSON array of the wire type `T`.
pub(crate) fn list_of<T: ToSchema>() -> Payload {
    Payload(array_of::<T>)
}

pub(crate) fn component<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    Ref::from_schema_name(T::name()).into()
}

fn array_of<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    ArrayBuilder::new().items(component::<T>(schemas)).into()
}

/// What `GET /api/v1/openapi.json` answers.
pub(crate) fn document_payload() -> Payload {
    Payload(document_schema)
}

/// An OpenAPI 3.1 document (this one): described by the OpenAPI schema, not by a wire type.
fn document_schema(_: &mut Schemas) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "An OpenAPI 3.1 document, as https://spec.openapis.org/oas/v3.1.0 defines it.",
        ))
        .property(
            "openapi",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^3\.1\.\d+(-.+)?$")),
        )
        .required("openapi")
        .property("info", ObjectBuilder::new().schema_type(Type::Object))
        .required("info")
        .property("paths", ObjectBuilder::new().schema_type(Type::Object))
        .required("paths")
        .into()
}

/// An optional query parameter.
pub(crate) fn query_param(
    name: &str,
    description: &str,
    schema: impl Into<RefOr<Schema>>,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}
