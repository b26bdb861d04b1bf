//! The document and its actions.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};

use crate::diag::SourcePos;
use crate::task::Task;
use crate::{Error, Result};

/// An action document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Whether the document was (or is to be) written as `{"load_density": [...]}`.
    pub wrapped: bool,
    pub actions: Vec<Action>,
}

/// One `[command, ...]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub command: String,
    pub args: Args,
}

/// What follows the command name.
#[derive(Debug, Clone, PartialEq)]
pub enum Args {
    None,
    Kwargs(Map<String, Value>),
    List(Vec<Value>),
}

impl Plan {
    /// Parses a document from text. A UTF-8 byte order mark is skipped.
    pub fn parse(text: &str) -> Result<Plan> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Syntax {
            message: syntax_message(&e),
            pos: SourcePos {
                line: e.line(),
                column: e.column(),
            },
        })?;
        Plan::from_value(value)
    }

    /// Reads the document shape from a JSON value.
    pub fn from_value(value: Value) -> Result<Plan> {
        let (wrapped, list, base) = match value {
            Value::Array(list) => (false, list, ""),
            Value::Object(mut map) => {
                let list = match map.remove("load_density") {
                    Some(Value::Array(list)) => list,
                    Some(_) => {
                        return Err(Error::shape("/load_density", "expected a list of actions"));
                    }
                    None => {
                        return Err(Error::shape(
                            "",
                            "expected a list of actions or {\"load_density\": [...]}",
                        ));
                    }
                };
                if let Some(key) = map.keys().next() {
                    return Err(Error::shape(
                        format!("/{}", escape_pointer(key)),
                        format!(
                            "unexpected key `{key}`: the only key of a document is `load_density`"
                        ),
                    ));
                }
                (true, list, "/load_density")
            }
            _ => {
                return Err(Error::shape(
                    "",
                    "expected a list of actions or {\"load_density\": [...]}",
                ));
            }
        };
        let actions = list
            .into_iter()
            .enumerate()
            .map(|(i, v)| Action::from_value(v, &format!("{base}/{i}")))
            .collect::<Result<_>>()?;
        Ok(Plan { wrapped, actions })
    }

    /// The document as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The canonical text of the document: two-space indentation, keys in model order, a final
    /// newline. The same plan always gives the same bytes.
    pub fn to_json_string(&self) -> String {
        let mut out = Vec::new();
        // Writing into memory cannot fail, and every key is a string.
        let _ = self.write_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Writes the canonical text to `out` without building it in memory first.
    pub fn write_json<W: std::io::Write>(&self, mut out: W) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut out, self).map_err(std::io::Error::other)?;
        out.write_all(b"\n")
    }

    /// The JSON pointer of action `index`.
    pub fn pointer(&self, index: usize) -> String {
        if self.wrapped {
            format!("/load_density/{index}")
        } else {
            format!("/{index}")
        }
    }
}

impl Action {
    /// An action with keyword arguments.
    pub fn with_kwargs(command: impl Into<String>, kwargs: Map<String, Value>) -> Action {
        Action {
            command: command.into(),
            args: Args::Kwargs(kwargs),
        }
    }

    /// `LD_start_test` with these settings.
    pub fn start_test(settings: &StartTest) -> Action {
        let kwargs = match serde_json::to_value(settings) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Action::with_kwargs("LD_start_test", kwargs)
    }

    fn from_value(value: Value, pointer: &str) -> Result<Action> {
        const SHAPE: &str =
            "expected an action: [command], [command, {kwargs}] or [command, [args]]";
        let Value::Array(items) = value else {
            return Err(Error::shape(pointer, SHAPE));
        };
        let count = items.len();
        let mut items = items.into_iter();
        let command = match items.next() {
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(Error::shape(
                    format!("{pointer}/0"),
                    format!("expected a command name, found {}", kind(&other)),
                ));
            }
            None => return Err(Error::shape(pointer, SHAPE)),
        };
        let args = match items.next() {
            None => Args::None,
            Some(Value::Object(map)) => Args::Kwargs(map),
            Some(Value::Array(list)) => Args::List(list),
            Some(other) => {
                return Err(Error::shape(
                    format!("{pointer}/1"),
                    format!(
                        "expected an object of keyword arguments or a list of arguments, found {}",
                        kind(&other)
                    ),
                ));
            }
        };
        if count > 2 {
            return Err(Error::shape(
                pointer,
                format!("an action has one or two elements, this one has {count}"),
            ));
        }
        Ok(Action { command, args })
    }

    /// The keyword arguments, if the action has them.
    pub fn kwargs(&self) -> Option<&Map<String, Value>> {
        match &self.args {
            Args::Kwargs(map) => Some(map),
            _ => None,
        }
    }

    /// Reads the arguments of an `LD_start_test` action into its typed form. `pointer` locates
    /// the action in error messages.
    pub fn as_start_test(&self, pointer: &str) -> Result<StartTest> {
        let value = match &self.args {
            Args::Kwargs(map) => Value::Object(map.clone()),
            Args::None => Value::Object(Map::new()),
            Args::List(list) => match list.first() {
                Some(Value::Object(map)) if list.len() == 1 => Value::Object(map.clone()),
                _ => {
                    return Err(Error::shape(
                        format!("{pointer}/1"),
                        "LD_start_test takes keyword arguments",
                    ));
                }
            },
        };
        StartTest::from_value(value, &format!("{pointer}/1"))
    }
}

impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.wrapped {
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry("load_density", &self.actions)?;
            map.end()
        } else {
            self.actions.serialize(s)
        }
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let len = if matches!(self.args, Args::None) {
            1
        } else {
            2
        };
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(&self.command)?;
        match &self.args {
            Args::None => {}
            Args::Kwargs(map) => seq.serialize_element(map)?,
            Args::List(list) => seq.serialize_element(list)?,
        }
        seq.end()
    }
}

/// The arguments of `LD_start_test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartTest {
    #[serde(default = "default_user")]
    pub user_detail_dict: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Tasks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn_rate: Option<Number>,
    /// Seconds; `Some(None)` is an explicit `null` (run until stopped).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "double_option"
    )]
    pub test_time: Option<Option<Number>>,
    /// Fields this model does not name (variables, csv_sources, load_shape, ...), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_user() -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("user".into(), Value::String("fast_http_user".into()));
    map
}

fn double_option<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<Number>>, D::Error> {
    Option::<Number>::deserialize(d).map(Some)
}

impl StartTest {
    fn from_value(value: Value, pointer: &str) -> Result<StartTest> {
        serde_json::from_value(value).map_err(|e| Error::shape(pointer, e.to_string()))
    }

    /// The user template, `fast_http_user` when none is named.
    pub fn user(&self) -> &str {
        self.user_detail_dict
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or("fast_http_user")
    }
}

/// The `tasks` of `LD_start_test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tasks {
    /// A plain list, run in sequence.
    List(Vec<Task>),
    /// `{"mode": "sequence" | "weighted" | "conditional", "tasks": [...]}`.
    Mode {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
        tasks: Vec<Task>,
    },
    /// The old form keyed by method: `{"get": {...}, "post": {...}}`.
    ByMethod(Map<String, Value>),
}

impl Tasks {
    /// The scenario mode, `sequence` unless named.
    pub fn mode(&self) -> &str {
        match self {
            Tasks::Mode { mode: Some(m), .. } => m,
            _ => "sequence",
        }
    }

    /// The tasks, with the old keyed-by-method form turned into tasks.
    pub fn to_list(&self) -> Vec<Task> {
        match self {
            Tasks::List(list) | Tasks::Mode { tasks: list, .. } => list.clone(),
            Tasks::ByMethod(map) => map
                .iter()
                .filter_map(|(method, body)| {
                    let mut body = body.as_object()?.clone();
                    body.entry("method")
                        .or_insert_with(|| Value::String(method.clone()));
                    serde_json::from_value(Value::Object(body)).ok()
                })
                .collect(),
        }
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn syntax_message(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the position is shown separately.
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_document_round_trips_byte_identically() {
        let text = r#"{
  "load_density": [
    [
      "LD_register_variables",
      {
        "base": "http://127.0.0.1:8080"
      }
    ],
    [
      "LD_start_test",
      {
        "user_detail_dict": {
          "user": "fast_http_user"
        },
        "tasks": {
          "mode": "weighted",
          "tasks": [
            {
              "method": "get",
              "request_url": "${var.base}/a",
              "weight": 3,
              "x_custom": [
                1,
                2
              ]
            }
          ]
        },
        "user_count": 10,
        "spawn_rate": 5,
        "test_time": null,
        "variables": {
          "k": "v"
        }
      }
    ],
    [
      "LD_something_new",
      [
        1,
        "two"
      ]
    ],
    [
      "LD_summary"
    ]
  ]
}
"#;
        let plan = Plan::parse(text).expect("parse");
        assert_eq!(plan.to_json_string(), text);
        let st = plan.actions[1]
            .as_start_test("/load_density/1")
            .expect("typed");
        assert_eq!(st.test_time, Some(None));
        assert_eq!(st.tasks.as_ref().map(Tasks::mode), Some("weighted"));
        let rebuilt = Plan {
            wrapped: true,
            actions: vec![
                plan.actions[0].clone(),
                Action::start_test(&st),
                plan.actions[2].clone(),
                plan.actions[3].clone(),
            ],
        };
        assert_eq!(rebuilt.to_json_string(), text);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = Plan::parse("[\n  [\"LD_summary\",\n").expect_err("truncated");
        match err {
            Error::Syntax { pos, .. } => assert_eq!(pos.line, 3),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn shape_errors_carry_a_pointer() {
        let err = Plan::parse(r#"{"load_density": [["LD_summary"], [1]]}"#).expect_err("bad");
        assert_eq!(
            err.to_string(),
            "/load_density/1/0: expected a command name, found a number"
        );
        let err = Plan::parse(r#"[["a", {}, {}]]"#).expect_err("bad");
        assert!(err.to_string().starts_with("/0: an action has one or two"));
        let err = Plan::parse(r#"{"actions": []}"#).expect_err("bad");
        assert!(err.to_string().contains("load_density"));
    }

    #[test]
    fn a_bom_is_skipped() {
        let plan = Plan::parse("\u{feff}[[\"LD_summary\"]]").expect("parse");
        assert_eq!(plan.actions.len(), 1);
        assert!(!plan.wrapped);
    }
}
