//! Example values from JSON Schemas (OpenAPI 2.0, 3.0 and 3.1 dialects), for parameters and
//! request bodies that the description gives no example for.
//!
//! The author's own values come first (`example`, `examples`, `default`, `const`, the first
//! `enum` value); otherwise a value is made from the type, the format and the bounds. Output is
//! deterministic, so plans diff cleanly. Recursive schemas stop where they would repeat, and a
//! budget of nodes keeps a huge schema from producing a huge body.

use serde_json::{Map, Number, Value};

use super::refs::{Docs, Node};

/// The deepest nesting generated.
const MAX_DEPTH: usize = 12;
/// The most values generated for one example.
const MAX_NODES: usize = 2_000;

/// Generates examples against one set of documents.
pub(crate) struct Generator<'a> {
    docs: &'a Docs,
    /// References being expanded, to stop at a cycle.
    stack: Vec<(usize, String)>,
    nodes: usize,
    /// Generating for a request: `readOnly` properties are left out.
    request: bool,
    /// Problems met (broken references), for the summary.
    pub(crate) problems: Vec<String>,
}

impl<'a> Generator<'a> {
    pub(crate) fn new(docs: &'a Docs, request: bool) -> Generator<'a> {
        Generator {
            docs,
            stack: Vec::new(),
            nodes: 0,
            request,
            problems: Vec::new(),
        }
    }

    /// An example for `schema`.
    pub(crate) fn example(&mut self, schema: Node<'a>) -> Value {
        self.nodes = 0;
        self.generate(schema, 0)
    }

    fn generate(&mut self, schema: Node<'a>, depth: usize) -> Value {
        self.nodes += 1;
        if depth > MAX_DEPTH || self.nodes > MAX_NODES {
            return Value::Null;
        }
        let Value::Object(map) = schema.value else {
            // `true` (any value) or a malformed schema.
            return Value::String("string".into());
        };
        if let Some(Value::String(r)) = map.get("$ref") {
            let key = (schema.doc, r.clone());
            if self.stack.contains(&key) {
                return Value::Null;
            }
            let target = match self.docs.lookup(schema.doc, r) {
                Ok(t) => t,
                Err(e) => {
                    self.problems.push(e);
                    return Value::Null;
                }
            };
            self.stack.push(key);
            let value = self.generate(target, depth + 1);
            self.stack.pop();
            return value;
        }
        if let Some(v) = map.get("example") {
            return v.clone();
        }
        if let Some(Value::Array(examples)) = map.get("examples")
            && let Some(first) = examples.first()
        {
            return first.clone();
        }
        if let Some(v) = map.get("default") {
            return v.clone();
        }
        if let Some(v) = map.get("const") {
            return v.clone();
        }
        if let Some(Value::Array(values)) = map.get("enum")
            && let Some(first) = values.iter().find(|v| !v.is_null()).or(values.first())
        {
            return first.clone();
        }
        if let Some(Value::Array(parts)) = map.get("allOf") {
            return self.all_of(schema.doc, parts, map, depth);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(choices)) = map.get(key) {
                let choice = choices
                    .iter()
                    .find(|c| c.get("type").and_then(Value::as_str) != Some("null"))
                    .or(choices.first());
                if let Some(choice) = choice {
                    return self.generate(
                        Node {
                            doc: schema.doc,
                            value: choice,
                        },
                        depth + 1,
                    );
                }
            }
        }
        let kind = match map.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null"),
            _ if map.contains_key("properties") || map.contains_key("additionalProperties") => {
                "object"
            }
            _ if map.contains_key("items") => "array",
            _ => "string",
        };
        match kind {
            "object" => self.object(schema.doc, map, depth),
            "array" => {
                let count = map
                    .get("minItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .clamp(1, 3);
                let item = match map.get("items") {
                    Some(items @ Value::Object(_)) => self.generate(
                        Node {
                            doc: schema.doc,
                            value: items,
                        },
                        depth + 1,
                    ),
                    // 2.0 and 3.0 tuple-ish forms: the first item schema.
                    Some(Value::Array(items)) if !items.is_empty() => self.generate(
                        Node {
                            doc: schema.doc,
                            value: &items[0],
                        },
                        depth + 1,
                    ),
                    _ => Value::String("string".into()),
                };
                if item.is_null() {
                    return Value::Array(Vec::new());
                }
                Value::Array(vec![item; count as usize])
            }
            "integer" => integer(map),
            "number" => number(map),
            "boolean" => Value::Bool(true),
            "null" => Value::Null,
            // 2.0 `type: file` form fields.
            "file" => Value::String(String::new()),
            _ => string(map),
        }
    }

    fn object(&mut self, doc: usize, map: &'a Map<String, Value>, depth: usize) -> Value {
        let mut out = Map::new();
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(Value::Object(props)) = map.get("properties") {
            for (name, prop) in props {
                let is_required = required.contains(&name.as_str());
                if !is_required && self.nodes > MAX_NODES / 2 {
                    continue;
                }
                let resolved = self
                    .docs
                    .deref(Node { doc, value: prop })
                    .map(|n| n.value)
                    .unwrap_or(prop);
                let read_only = resolved.get("readOnly").and_then(Value::as_bool) == Some(true);
                let write_only = resolved.get("writeOnly").and_then(Value::as_bool) == Some(true);
                if (self.request && read_only) || (!self.request && write_only) {
                    continue;
                }
                let value = self.generate(Node { doc, value: prop }, depth + 1);
                if value.is_null() && !is_required {
                    continue;
                }
                out.insert(name.clone(), value);
            }
        } else if let Some(extra @ Value::Object(_)) = map.get("additionalProperties") {
            let value = self.generate(Node { doc, value: extra }, depth + 1);
            if !value.is_null() {
                out.insert("key".into(), value);
            }
        }
        Value::Object(out)
    }

    fn all_of(
        &mut self,
        doc: usize,
        parts: &'a [Value],
        outer: &'a Map<String, Value>,
        depth: usize,
    ) -> Value {
        let mut merged = Map::new();
        let mut last = Value::Null;
        for part in parts {
            match self.generate(Node { doc, value: part }, depth + 1) {
                Value::Object(m) => merged.extend(m),
                Value::Null => {}
                other => last = other,
            }
        }
        // Properties beside `allOf` belong to the same object.
        if outer.contains_key("properties")
            && let Value::Object(m) = self.object(doc, outer, depth)
        {
            merged.extend(m);
        }
        if merged.is_empty() && !last.is_null() {
            last
        } else {
            Value::Object(merged)
        }
    }
}

fn bound(map: &Map<String, Value>, key: &str, exclusive_key: &str) -> Option<(f64, bool)> {
    // 3.1: `exclusiveMinimum: 5`; 3.0 and 2.0: `minimum: 5, exclusiveMinimum: true`.
    if let Some(v) = map.get(exclusive_key).and_then(Value::as_f64) {
        return Some((v, true));
    }
    let v = map.get(key).and_then(Value::as_f64)?;
    let exclusive = map.get(exclusive_key).and_then(Value::as_bool) == Some(true);
    Some((v, exclusive))
}

fn integer(map: &Map<String, Value>) -> Value {
    let min = bound(map, "minimum", "exclusiveMinimum");
    let max = bound(map, "maximum", "exclusiveMaximum");
    let mut v: f64 = match min {
        Some((m, true)) => m.floor() + 1.0,
        Some((m, false)) => m.ceil(),
        None => 1.0,
    };
    if let Some((m, exclusive)) = max {
        let top = if exclusive { m.ceil() - 1.0 } else { m.floor() };
        if v > top {
            v = top;
        }
    }
    if let Some(step) = map.get("multipleOf").and_then(Value::as_f64)
        && step >= 1.0
    {
        v = (v / step).ceil() * step;
    }
    if v.is_finite() && v.abs() < 9.0e15 {
        Value::Number(Number::from(v as i64))
    } else {
        Value::Number(Number::from(1))
    }
}

fn number(map: &Map<String, Value>) -> Value {
    let min = bound(map, "minimum", "exclusiveMinimum");
    let max = bound(map, "maximum", "exclusiveMaximum");
    let mut v = match min {
        Some((m, true)) => m + 1.0,
        Some((m, false)) => m,
        None => 1.5,
    };
    if let Some((m, _)) = max
        && v > m
    {
        v = m;
    }
    Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or_else(|| Value::Number(Number::from(0)))
}

fn string(map: &Map<String, Value>) -> Value {
    let format = map
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let base = match format {
        "date-time" => "2024-01-01T00:00:00Z",
        "date" => "2024-01-01",
        "time" => "00:00:00Z",
        "duration" => "PT1M",
        "email" | "idn-email" => "user@example.com",
        "uuid" => "00000000-0000-4000-8000-000000000000",
        "uri" | "url" | "iri" => "https://example.com/",
        "uri-reference" | "iri-reference" => "/example",
        "hostname" | "idn-hostname" => "example.com",
        "ipv4" => "192.0.2.1",
        "ipv6" => "2001:db8::1",
        "byte" => "c3RyaW5n",
        "binary" => "",
        "password" => "password",
        "int32" | "int64" => "1",
        "json-pointer" => "/a",
        "regex" => ".*",
        _ => "string",
    };
    let mut s = base.to_string();
    let min = map.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = map
        .get("maxLength")
        .and_then(Value::as_u64)
        .map(|m| m as usize);
    if s.chars().count() < min {
        let pad = min.min(4096) - s.chars().count();
        s.push_str(&"x".repeat(pad));
    }
    if let Some(max) = max
        && s.chars().count() > max
    {
        s = s.chars().take(max).collect();
    }
    Value::String(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(root: Value, pointer: &str, request: bool) -> Value {
        let docs = Docs::load(root, None, None);
        let node = docs.lookup(0, pointer).expect("pointer");
        let mut g = Generator::new(&docs, request);
        g.example(node)
    }

    #[test]
    fn author_values_first_then_types_and_formats() {
        let root = json!({"s": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "integer", "minimum": 10, "readOnly": true},
                "name": {"type": "string", "example": "Rex"},
                "kind": {"type": "string", "enum": ["dog", "cat"]},
                "born": {"type": "string", "format": "date"},
                "tags": {"type": "array", "items": {"type": "string", "minLength": 8}},
                "score": {"type": ["number", "null"], "exclusiveMinimum": 2},
                "mail": {"type": "string", "format": "email"}
            }
        }});
        assert_eq!(
            sample(root.clone(), "#/s", false),
            json!({"id": 10, "name": "Rex", "kind": "dog", "born": "2024-01-01",
                   "tags": ["stringxx"], "score": 3.0, "mail": "user@example.com"})
        );
        let request = sample(root, "#/s", true);
        assert!(request.get("id").is_none(), "readOnly left out of requests");
    }

    #[test]
    fn cycles_stop_and_all_of_merges() {
        let root = json!({
            "Node": {"type": "object", "properties": {
                "value": {"type": "integer"},
                "next": {"$ref": "#/Node"}
            }},
            "Both": {"allOf": [
                {"$ref": "#/Node"},
                {"type": "object", "properties": {"extra": {"type": "boolean"}}}
            ]}
        });
        assert_eq!(
            sample(root.clone(), "#/Node", true),
            json!({"value": 1, "next": {"value": 1}})
        );
        let both = sample(root, "#/Both", true);
        assert_eq!(both["extra"], true);
        assert_eq!(both["value"], 1);
    }

    #[test]
    fn huge_schemas_are_bounded() {
        let mut props = Map::new();
        for i in 0..5000 {
            props.insert(format!("p{i}"), json!({"type": "string"}));
        }
        let root = json!({"s": {"type": "object", "properties": props}});
        let v = sample(root, "#/s", true);
        assert!(v.as_object().expect("object").len() <= MAX_NODES);
    }
}
