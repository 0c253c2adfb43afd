//! Renders `openapi.json` from the API trait. Dropshot documents only JSON
//! bodies, so this adds what it cannot express: the `text/event-stream`
//! variants with every stream event as a named schema, and bearer auth.

use openapiv3::{
    MediaType, OpenAPI, ReferenceOr, SecurityRequirement, SecurityScheme,
};
use schemars::r#gen::SchemaSettings;

use super::chat_completion::ChatCompletionChunk;
use super::compact::{
    CompactResponse, CompactedResponse, TokenCountsBody, TokenCountsResource,
};
use super::events::ResponseStreamEvent;
use super::maniac_api_mod as api_mod;

/// Operations whose 200 answer may also be an event stream, with the
/// schema of their events.
const STREAMING_OPERATIONS: [(&str, &str); 3] = [
    ("response_create", "ResponseStreamEvent"),
    ("response_view", "ResponseStreamEvent"),
    ("chat_completion_create", "ChatCompletionChunk"),
];

/// The OpenAPI document, exactly as checked in at `openapi.json`
/// (pretty-printed, with a trailing newline).
pub fn openapi_document() -> Result<String, String> {
    let description = api_mod::stub_api_description()
        .map_err(|e| format!("API description: {e}"))?;
    let mut def =
        description.openapi("Maniac gateway", semver::Version::new(1, 0, 0));
    def.description(
        "The OpenAI Responses API in front of many model providers. \
         Authenticate with `Authorization: Bearer <key>`.",
    );
    let mut raw = Vec::new();
    def.write(&mut raw).map_err(|e| format!("render: {e}"))?;
    let mut doc: OpenAPI =
        serde_json::from_slice(&raw).map_err(|e| format!("reparse: {e}"))?;
    add_event_stream(&mut doc)?;
    add_dispatched_operations(&mut doc);
    add_links(&mut doc)?;
    add_bearer_auth(&mut doc);
    let mut out =
        serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    out.push('\n');
    Ok(out)
}

fn add_event_stream(doc: &mut OpenAPI) -> Result<(), String> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    // Registers ResponseStreamEvent and every event in the definitions,
    // and the chunk of a chat stream.
    generator.subschema_for::<ResponseStreamEvent>();
    generator.subschema_for::<ChatCompletionChunk>();
    // The bodies of the operations `response_action` serves.
    for (_, _, _, _, request, answer) in DISPATCHED_OPERATIONS {
        request(&mut generator);
        answer(&mut generator);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    let defs = generator.take_definitions();
    for (name, schema) in defs {
        if components.schemas.contains_key(&name) {
            continue;
        }
        let mut value =
            serde_json::to_value(&schema).map_err(|e| e.to_string())?;
        bool_schemas_to_objects(&mut value);
        let schema = serde_json::from_value(value)
            .map_err(|e| format!("schema {name}: {e}"))?;
        components.schemas.insert(name, schema);
    }
    components.schemas.sort_keys();
    for (_, item) in doc.paths.paths.iter_mut() {
        let ReferenceOr::Item(item) = item else { continue };
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            let Some((_, event)) = STREAMING_OPERATIONS
                .iter()
                .find(|(id, _)| op.operation_id.as_deref() == Some(id))
            else {
                continue;
            };
            let event_ref = ReferenceOr::Reference {
                reference: format!("#/components/schemas/{event}"),
            };
            let ok = op
                .responses
                .responses
                .get_mut(&openapiv3::StatusCode::Code(200))
                .ok_or("streaming operation without a 200 answer")?;
            let ReferenceOr::Item(ok) = ok else { continue };
            ok.description = "The response object, or (with `stream`) \
                              server-sent events"
                .to_string();
            ok.content.insert(
                "text/event-stream".to_string(),
                MediaType { schema: Some(event_ref), ..Default::default() },
            );
        }
    }
    Ok(())
}

/// Registers a type's schema with a generator; returns its name.
type Register = fn(&mut schemars::r#gen::SchemaGenerator) -> String;

fn register<T: schemars::JsonSchema>(
    g: &mut schemars::r#gen::SchemaGenerator,
) -> String {
    g.subschema_for::<T>();
    T::schema_name()
}

/// The operations the unpublished `POST /v1/responses/{response_id}`
/// serves by name: path, operation id, summary, description, request and
/// answer schemas.
const DISPATCHED_OPERATIONS: [(&str, &str, &str, &str, Register, Register); 2] = [
    (
        "/v1/responses/compact",
        "response_compact",
        "Compact a conversation",
        "The model named by `model` summarizes the conversation (`input`, \
         after the transcript of `previous_response_id` if given) under the \
         gateway's fixed compaction prompt. `output` holds the user \
         messages, kept verbatim, then one `compaction` item whose \
         `encrypted_content` seals the summary: pass `output` as the start \
         of a new conversation's `input`. Only your organization can open \
         it; an altered one is a 400 `invalid_encrypted_content`.",
        register::<CompactResponse>,
        register::<CompactedResponse>,
    ),
    (
        "/v1/responses/input_tokens",
        "response_input_tokens_count",
        "Count input tokens",
        "Counts the input tokens of a create body as the upstream would see \
         them: the provider's own count where it has one (Anthropic), \
         OpenAI's tokenizers for OpenAI model families, an `o200k_base` \
         estimate otherwise. The same validation as create applies.",
        register::<TokenCountsBody>,
        register::<TokenCountsResource>,
    ),
];

fn schema_ref(name: &str) -> ReferenceOr<openapiv3::Schema> {
    ReferenceOr::Reference { reference: format!("#/components/schemas/{name}") }
}

/// Documents the operations `response_action` serves as their own paths,
/// shaped as dropshot shapes the published ones.
fn add_dispatched_operations(doc: &mut OpenAPI) {
    let mut names = SchemaSettings::openapi3().into_generator();
    for (path, id, summary, description, request, answer) in
        DISPATCHED_OPERATIONS
    {
        let (request, answer) = (request(&mut names), answer(&mut names));
        let json = |schema| {
            let mut content = indexmap::IndexMap::new();
            content.insert(
                "application/json".to_string(),
                MediaType { schema: Some(schema), ..Default::default() },
            );
            content
        };
        let mut responses = openapiv3::Responses::default();
        responses.responses.insert(
            openapiv3::StatusCode::Code(200),
            ReferenceOr::Item(openapiv3::Response {
                description: "successful operation".to_string(),
                content: json(schema_ref(&answer)),
                ..Default::default()
            }),
        );
        for class in [4, 5] {
            responses.responses.insert(
                openapiv3::StatusCode::Range(class),
                ReferenceOr::Reference {
                    reference: "#/components/responses/ErrorResponse"
                        .to_string(),
                },
            );
        }
        let op = openapiv3::Operation {
            tags: vec!["responses".to_string()],
            summary: Some(summary.to_string()),
            description: Some(description.to_string()),
            operation_id: Some(id.to_string()),
            request_body: Some(ReferenceOr::Item(openapiv3::RequestBody {
                content: json(schema_ref(&request)),
                required: true,
                ..Default::default()
            })),
            responses,
            ..Default::default()
        };
        doc.paths.paths.insert(
            path.to_string(),
            ReferenceOr::Item(openapiv3::PathItem {
                post: Some(op),
                ..Default::default()
            }),
        );
    }
}

/// Links from a created response's `id` to the operations that take it,
/// so clients and spec-driven testers can follow them.
fn add_links(doc: &mut OpenAPI) -> Result<(), String> {
    let Some(ReferenceOr::Item(path)) =
        doc.paths.paths.get_mut("/v1/responses")
    else {
        return Err("no /v1/responses path".into());
    };
    let op = path.post.as_mut().ok_or("no POST /v1/responses")?;
    let Some(ReferenceOr::Item(ok)) =
        op.responses.responses.get_mut(&openapiv3::StatusCode::Code(200))
    else {
        return Err("no 200 answer of response_create".into());
    };
    for (name, operation) in [
        ("ViewResponse", "response_view"),
        ("DeleteResponse", "response_delete"),
        ("CancelResponse", "response_cancel"),
        ("ListInputItems", "response_input_items_list"),
    ] {
        let mut parameters = indexmap::IndexMap::new();
        parameters.insert(
            "response_id".to_string(),
            serde_json::Value::String("$response.body#/id".to_string()),
        );
        ok.links.insert(
            name.to_string(),
            ReferenceOr::Item(openapiv3::Link {
                operation: openapiv3::LinkOperation::OperationId(
                    operation.to_string(),
                ),
                parameters,
                description: Some(format!(
                    "Use the created response's `id` with `{operation}`."
                )),
                request_body: None,
                server: None,
                extensions: Default::default(),
            }),
        );
    }
    Ok(())
}

/// JSON Schema allows `true` for "anything"; OpenAPI 3.0 wants `{}`.
fn bool_schemas_to_objects(v: &mut serde_json::Value) {
    use serde_json::Value;
    let fix = |s: &mut Value| {
        if s.as_bool() == Some(true) {
            *s = Value::Object(Default::default());
        }
    };
    let Value::Object(map) = v else { return };
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        props.values_mut().for_each(fix);
    }
    if let Some(items) = map.get_mut("items") {
        fix(items);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(list)) = map.get_mut(key) {
            list.iter_mut().for_each(fix);
        }
    }
    for child in map.values_mut() {
        match child {
            Value::Object(_) => bool_schemas_to_objects(child),
            Value::Array(list) => {
                list.iter_mut().for_each(bool_schemas_to_objects)
            }
            _ => {}
        }
    }
}

fn add_bearer_auth(doc: &mut OpenAPI) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearerAuth".to_string(),
        ReferenceOr::Item(SecurityScheme::HTTP {
            scheme: "bearer".to_string(),
            bearer_format: None,
            description: Some(
                "A Maniac API key, sent as `Authorization: Bearer <key>`."
                    .to_string(),
            ),
            extensions: Default::default(),
        }),
    );
    let mut req = SecurityRequirement::new();
    req.insert("bearerAuth".to_string(), Vec::new());
    doc.security = Some(vec![req]);
}
