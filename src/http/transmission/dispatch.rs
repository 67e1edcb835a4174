//! Method names to their handlers, and typed reads of a call's `arguments`.
//!
//! A handler answers `Ok(arguments)` or `Err(text)`: the text becomes the envelope's
//! `result`, so it must say what was wrong in words a user can act on.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::super::Api;
use super::{actions, session, torrent_add, torrent_get, torrent_set};

pub type Answer = Result<Map<String, Value>, String>;

/// A method's `arguments`: built as a JSON map, or (torrent-get, whose listings can hold
/// 100,000 torrents) already serialized, so no map of every field is built on the way.
pub enum Arguments {
    Map(Map<String, Value>),
    /// A serialized JSON object.
    Serialized(Vec<u8>),
}

pub async fn call(
    api: &Arc<Api>,
    method: &str,
    args: Map<String, Value>,
) -> Result<Arguments, String> {
    let args = Args(args);
    if method == "torrent-get" {
        return torrent_get::get(api, &args)
            .await
            .map(Arguments::Serialized);
    }
    let answer = match method {
        "session-get" => session::get(api, &args).await,
        "session-set" => session::set(api, &args).await,
        "session-stats" => session::stats(api).await,
        "session-close" => session::close(api),
        "free-space" => session::free_space(&args).await,
        "port-test" => session::port_test(),
        "blocklist-update" => session::blocklist_update(api),
        "torrent-add" => torrent_add::add(api, &args).await,
        "torrent-set" => torrent_set::set(api, &args).await,
        "torrent-start" | "torrent-start-now" => actions::start(api, &args).await,
        "torrent-stop" => actions::stop(api, &args).await,
        "torrent-verify" => actions::verify(api, &args).await,
        "torrent-reannounce" => actions::reannounce(api, &args).await,
        "torrent-remove" => actions::remove(api, &args).await,
        "torrent-set-location" => actions::set_location(api, &args).await,
        "torrent-rename-path" => actions::rename_path(api, &args).await,
        "queue-move-top" | "queue-move-up" | "queue-move-down" | "queue-move-bottom" => {
            actions::queue_move(api, method, &args).await
        }
        _ => Err("method name not recognized".into()),
    };
    answer.map(Arguments::Map)
}

/// A JSON value's kind, for error messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A call's `arguments`, read with the types the protocol gives them. A key of the wrong
/// type is an error naming the key, never a silent default.
pub struct Args(pub Map<String, Value>);

impl Args {
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Booleans; 0 and 1 too (older clients send numbers).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(other) => Err(wrong(key, "a boolean", other)),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| format!("\"{key}\" must be a whole number")),
            Some(other) => Err(wrong(key, "a number", other)),
        }
    }

    /// A finite number (a numeric string too, as some clients send ratios).
    pub fn real(&self, key: &str) -> Result<Option<f64>, String> {
        let v = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(other) => return Err(wrong(key, "a number", other)),
        };
        v.filter(|f: &f64| f.is_finite())
            .map(Some)
            .ok_or_else(|| format!("\"{key}\" must be a finite number"))
    }

    pub fn str(&self, key: &str) -> Result<Option<&str>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong(key, "a string", other)),
        }
    }

    /// A list of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(wrong(key, "a list of strings", other)),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(other) => Err(wrong(key, "a list of strings", other)),
        }
    }

    /// A list of file indices.
    pub fn indices(&self, key: &str) -> Result<Option<Vec<usize>>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| wrong(key, "a list of file indices", v))
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(other) => Err(wrong(key, "a list of file indices", other)),
        }
    }
}

fn wrong(key: &str, expected: &str, got: &Value) -> String {
    format!("\"{key}\" must be {expected}, not {}", kind_of(got))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Args {
        Args(v.as_object().unwrap().clone())
    }

    #[test]
    fn arguments_of_the_wrong_type_are_named() {
        let a = args(serde_json::json!({
            "paused": 1, "limit": 12, "ratio": "1.5", "files": [0, 2], "labels": ["a"],
            "bad": "x", "neg": [-1]
        }));
        assert_eq!(a.bool("paused"), Ok(Some(true)));
        assert_eq!(a.int("limit"), Ok(Some(12)));
        assert_eq!(a.real("ratio"), Ok(Some(1.5)));
        assert_eq!(a.indices("files"), Ok(Some(vec![0, 2])));
        assert_eq!(a.strings("labels"), Ok(Some(vec!["a".to_string()])));
        assert_eq!(a.int("missing"), Ok(None));
        assert_eq!(
            a.bool("bad"),
            Err("\"bad\" must be a boolean, not a string".into())
        );
        assert!(a.indices("neg").unwrap_err().contains("file indices"));
        let odd = args(serde_json::json!({"nan": "NaN", "inf": "inf", "big": 1e300}));
        assert!(a.real("bad").is_err());
        assert!(odd.real("nan").unwrap_err().contains("finite"));
        assert!(odd.real("inf").is_err());
        assert_eq!(odd.int("big"), Ok(Some(i64::MAX)), "saturates, never wraps");
    }
}
