//! Reading a plan document without holding every task as a JSON value at once.
//!
//! A JSON value costs about ten times its text, so a plan of a million tasks read whole would
//! need gigabytes before the first task is compiled. The `tasks` of each `LD_start_test` are
//! left as text (slices of the document, 16 bytes a task) and each task is read into a value
//! only when it is compiled, then dropped. Everything else is read as before. A document this
//! reader does not recognise (an unusual shape, a syntax error) is read by [`Plan::parse`],
//! whose errors are the ones reported, so reading lazily never changes what a plan means or
//! which error it gives.

use indexmap::IndexMap;
use ld_plan::{Action, Plan};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A document whose task lists may still be text.
pub(crate) struct Doc<'a> {
    pub(crate) wrapped: bool,
    pub(crate) actions: Vec<Action>,
    /// For each action, the text of its `LD_start_test` `tasks` when it was left unread (the
    /// key is then absent from the action's keyword arguments).
    pub(crate) tasks: Vec<Option<&'a RawValue>>,
}

/// Reads `text` (a byte order mark is skipped).
pub(crate) fn read(text: &str) -> ld_plan::Result<Doc<'_>> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(doc) = lazy(body) {
        return Ok(doc);
    }
    let plan = Plan::parse(text)?;
    Ok(Doc {
        wrapped: plan.wrapped,
        tasks: vec![None; plan.actions.len()],
        actions: plan.actions,
    })
}

fn first_byte(raw: &str) -> Option<u8> {
    raw.trim_start().as_bytes().first().copied()
}

fn lazy(text: &str) -> Option<Doc<'_>> {
    let (wrapped, list): (bool, Vec<&RawValue>) = match first_byte(text)? {
        b'[' => (false, serde_json::from_str(text).ok()?),
        b'{' => {
            let mut map: IndexMap<String, &RawValue> = serde_json::from_str(text).ok()?;
            if map.len() != 1 {
                return None;
            }
            let raw = map.swap_remove("load_density")?;
            (true, serde_json::from_str(raw.get()).ok()?)
        }
        _ => return None,
    };
    let mut values = Vec::with_capacity(list.len());
    let mut tasks = Vec::with_capacity(list.len());
    for raw in list {
        let (value, t) = action(raw)?;
        values.push(value);
        tasks.push(t);
    }
    // The shape of every action is checked by the model, as for a document read whole.
    let plan = Plan::from_value(Value::Array(values)).ok()?;
    Some(Doc {
        wrapped,
        actions: plan.actions,
        tasks,
    })
}

/// One action as a value, with the text of its tasks when it is an `LD_start_test` with
/// keyword arguments.
fn action(raw: &RawValue) -> Option<(Value, Option<&RawValue>)> {
    let text = raw.get();
    let whole = || serde_json::from_str::<Value>(text).ok().map(|v| (v, None));
    if first_byte(text) != Some(b'[') {
        return whole();
    }
    let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    let start_test = items.len() == 2
        && first_byte(items[1].get()) == Some(b'{')
        && serde_json::from_str::<String>(items[0].get()).ok()? == "LD_start_test";
    if !start_test {
        return whole();
    }
    let kwargs: IndexMap<String, &RawValue> = serde_json::from_str(items[1].get()).ok()?;
    let mut map = Map::new();
    let mut tasks = None;
    for (k, v) in kwargs {
        if k == "tasks" {
            tasks = Some(v);
        } else {
            map.insert(k, serde_json::from_str(v.get()).ok()?);
        }
    }
    let value = Value::Array(vec![
        Value::String("LD_start_test".into()),
        Value::Object(map),
    ]);
    Some((value, tasks))
}

/// A task list left as text.
pub(crate) struct TextList<'a> {
    /// Written as `{"mode": ..., "tasks": [...]}` rather than as a bare list.
    pub(crate) nested: bool,
    pub(crate) mode: Option<Value>,
    pub(crate) items: Vec<&'a RawValue>,
}

/// A task list left as text: `[...]`, or `{"mode": ..., "tasks": [...]}` with no other key.
/// `None` for any other shape (read it as a value).
pub(crate) fn task_list(raw: &RawValue) -> Option<TextList<'_>> {
    match first_byte(raw.get())? {
        b'[' => Some(TextList {
            nested: false,
            mode: None,
            items: serde_json::from_str(raw.get()).ok()?,
        }),
        b'{' => {
            let map: IndexMap<String, &RawValue> = serde_json::from_str(raw.get()).ok()?;
            if map.keys().any(|k| k != "mode" && k != "tasks") {
                return None;
            }
            let list = map.get("tasks")?;
            if first_byte(list.get())? != b'[' {
                return None;
            }
            let mode = match map.get("mode") {
                Some(m) => Some(serde_json::from_str(m.get()).ok()?),
                None => None,
            };
            Some(TextList {
                nested: true,
                mode,
                items: serde_json::from_str(list.get()).ok()?,
            })
        }
        _ => None,
    }
}

/// Whether a task's text is an object.
pub(crate) fn is_object(raw: &RawValue) -> bool {
    first_byte(raw.get()) == Some(b'{')
}

/// The task's value; its text was checked when the document was read.
pub(crate) fn value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_left_as_text_and_the_rest_is_read() {
        let text = r#"{"load_density": [["LD_register_variable", {"name": "a", "value": 1}],
            ["LD_start_test", {"user_count": 2, "tasks": [{"method": "get"}, {"method": "post"}]}]]}"#;
        let doc = read(text).expect("reads");
        assert!(doc.wrapped);
        assert_eq!(doc.actions.len(), 2);
        assert!(doc.tasks[0].is_none());
        let raw = doc.tasks[1].expect("tasks left as text");
        let list = task_list(raw).expect("a list");
        assert!(!list.nested && list.mode.is_none());
        assert_eq!(list.items.len(), 2);
        assert_eq!(value(list.items[1])["method"], "post");
        let kw = doc.actions[1].kwargs().expect("kwargs");
        assert_eq!(kw["user_count"], 2);
        assert!(!kw.contains_key("tasks"));
    }

    #[test]
    fn a_mode_object_is_left_as_text_too() {
        let raw: &RawValue =
            serde_json::from_str(r#"{"mode": "weighted", "tasks": [{"method": "get"}]}"#)
                .expect("raw");
        let list = task_list(raw).expect("lazy");
        assert!(list.nested);
        assert_eq!(list.mode, Some(Value::from("weighted")));
        assert_eq!(list.items.len(), 1);
        let by_method: &RawValue =
            serde_json::from_str(r#"{"get": {"request_url": "/"}}"#).expect("raw");
        assert!(task_list(by_method).is_none());
    }

    #[test]
    fn odd_documents_give_the_model_errors() {
        for text in [
            r#"{"load_density": [["LD_start_test", {"tasks": []}]], "x": 1}"#,
            r#"[["LD_start_test", {"tasks": [}]]"#,
            r#"[[1, {}]]"#,
        ] {
            let lazy = read(text).err().map(|e| e.to_string());
            let whole = Plan::parse(text).err().map(|e| e.to_string());
            assert_eq!(lazy, whole, "{text}");
            assert!(lazy.is_some(), "{text}");
        }
    }
}
