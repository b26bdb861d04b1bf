//! The JSON Schema (2020-12) of an action document, written by hand: the document is a list of
//! `[command, args]` tuples, which derive-based generators describe poorly, and the schema says
//! what LoadDensity accepts (every task field it reads, LoadDensity's and ld's), not how this
//! crate's Rust types happen to be laid out.

use serde_json::{Value, json};

use crate::{KNOWN_COMMANDS, TASK_FIELDS};

/// Task fields read beyond [`TASK_FIELDS`]: by the engine (`throttle`, `retry`, `cert`,
/// `client_cert`, `protocol`, `recorded`), by LoadDensity (`proxy`, `step_id`, `scenario_id`) and by the
/// protocol tasks (WebSocket, SSE, socket, MQTT, gRPC); keep in step with the engine's
/// `protocol::*::FIELDS`.
const MORE_TASK_FIELDS: &[&str] = &[
    "throttle",
    "retry",
    "graphql",
    "recorded",
    "cert",
    "client_cert",
    "protocol",
    "proxy",
    "step_id",
    "scenario_id",
    "connection",
    "payload",
    "expect",
    "target",
    "expect_bytes",
    "expect_substring",
    "broker",
    "topic",
    "qos",
    "retain",
    "username",
    "password",
    "client_id",
    "stub_path",
    "request_path",
    "metadata",
    "subprotocols",
    "count",
    "keep_alive",
    "tls",
    "upgrade",
    "host",
    "rpc",
];

/// The schema as a JSON value.
pub fn schema() -> Value {
    let mut task_props = serde_json::Map::new();
    for f in TASK_FIELDS.iter().chain(MORE_TASK_FIELDS) {
        task_props.insert((*f).to_string(), json!({}));
    }
    task_props.insert("method".into(), json!({"type": "string"}));
    task_props.insert("request_url".into(), json!({"type": "string"}));
    task_props.insert("url".into(), json!({"type": "string"}));
    task_props.insert("proxy".into(), json!({"type": ["string", "null"]}));
    task_props.insert(
        "recorded".into(),
        json!({"type": "object", "required": ["at"], "additionalProperties": false,
               "description": "when the request started in the recording (seconds after the first) and on which recorded connection: what `ld replay --pace recorded` replays by",
               "properties": {"at": {"type": "number", "minimum": 0},
                              "session": {"type": "integer", "minimum": 0}}}),
    );
    task_props.insert(
        "assertions".into(),
        json!({"type": "array", "items": {"$ref": "#/$defs/assertion"}}),
    );
    task_props.insert(
        "extract".into(),
        json!({"type": "array", "items": {"$ref": "#/$defs/extractor"}}),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/ld/ld/plan.schema.json",
        "title": "LoadDensity action JSON (as ld reads it)",
        "oneOf": [
            {"$ref": "#/$defs/actions"},
            {"type": "object", "properties": {"load_density": {"$ref": "#/$defs/actions"}},
             "required": ["load_density"], "additionalProperties": false}
        ],
        "$defs": {
            "actions": {"type": "array", "items": {"$ref": "#/$defs/action"}},
            "action": {
                "type": "array", "minItems": 1, "maxItems": 2,
                "prefixItems": [
                    {"type": "string", "description": "a command", "examples": KNOWN_COMMANDS},
                    {"type": ["object", "array"]}
                ]
            },
            "tasks": {"oneOf": [
                {"type": "array", "items": {"$ref": "#/$defs/task"}},
                {"type": "object", "required": ["tasks"], "additionalProperties": false, "properties": {
                    "mode": {"enum": ["sequence", "weighted", "conditional"]},
                    "tasks": {"type": "array", "items": {"$ref": "#/$defs/task"}}}},
                {"type": "object", "not": {"required": ["tasks"]},
                 "additionalProperties": {"$ref": "#/$defs/task"}}
            ]},
            "task": {"type": "object", "properties": task_props, "additionalProperties": false},
            "assertion": {"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["status_code", "contains", "not_contains", "json_path", "header", "regex", "max_latency_ms", "json_shape"]},
                "value": {}, "shape": {}, "path": {"type": "string"}, "name": {"type": "string"}, "pattern": {"type": "string"}},
                "additionalProperties": false},
            "extractor": {"type": "object", "required": ["var", "from"], "properties": {
                "var": {"type": "string"}, "from": {"enum": ["json_path", "header", "status_code", "regex"]},
                "path": {"type": "string"}, "name": {"type": "string"}, "pattern": {"type": "string"},
                "scope": {"enum": ["var", "session"]},
                "recorded_sha256": {"type": "string", "pattern": "^[0-9a-f]{16}$", "description": "the start of the SHA-256 of the recorded value: `ld replay --verify-correlation` reports an extractor that returns it again"}},
                "additionalProperties": false}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_2020_12_and_names_every_task_field() {
        let s = schema();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        let props = s["$defs"]["task"]["properties"].as_object().expect("props");
        for f in TASK_FIELDS
            .iter()
            .chain(["proxy", "step_id", "scenario_id"].iter())
        {
            assert!(props.contains_key(*f), "{f}");
        }
    }
}
