//! Mapping of Claude Code's headless NDJSON output (`--output-format stream-json
//! --verbose`, optionally `--include-partial-messages`) to the event vocabulary.
//! Pure: one line in, zero or more events out; the final `result` is built once the
//! process has exited.
//!
//! | CLI line | events |
//! |---|---|
//! | `system` / `init` | none (its `session_id` is remembered) |
//! | `system` / other subtype | `stdout` with the raw line |
//! | `stream_event` with `content_block_delta` / `text_delta` | `text_delta` |
//! | other `stream_event` | none (`message_start` remembers the message id) |
//! | `assistant`: `text` block | `text_delta`, unless that message's text already came as deltas |
//! | `assistant`: `tool_use` block | `tool_use {id, name, input}` |
//! | `user`: `tool_result` block | `tool_result {tool_use_id, content, is_error}` |
//! | `result` | none until exit, then one `result` |
//! | any other `type`, or no `type` | `stdout` with the raw line |
//! | not a JSON object | `stderr` with the raw line |

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::wire::Event;

/// What the CLI's `result` line said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CliResult {
    pub subtype: Option<String>,
    pub is_error: bool,
    pub text: Option<String>,
    pub session_id: Option<String>,
    /// `usage`, `total_cost_usd`, `num_turns`, `duration_ms`, `duration_api_ms`,
    /// `subtype`, `model_usage` (whichever the line had), passed through.
    pub usage: Option<Value>,
}

/// Stateful mapper of one CLI run.
#[derive(Debug, Default)]
pub struct StreamJsonMapper {
    session_id: Option<String>,
    current_stream_message: Option<String>,
    streamed_messages: HashSet<String>,
    unattributed_stream_text: bool,
    result: Option<CliResult>,
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

impl StreamJsonMapper {
    pub fn new() -> Self {
        Self::default()
    }

    /// The session id seen so far (from `system`/`init` or `result`).
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The `result` line, if one arrived.
    pub fn result(&self) -> Option<&CliResult> {
        self.result.as_ref()
    }

    /// Maps one stdout line (without its terminator).
    pub fn map_line(&mut self, line: &str) -> Vec<Event> {
        if line.trim().is_empty() {
            return Vec::new();
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return vec![Event::Stderr {
                    data: line.to_string(),
                }]
            }
        };
        let passthrough = || {
            vec![Event::Stdout {
                data: line.to_string(),
            }]
        };
        match v.get("type").and_then(Value::as_str) {
            Some("system") => {
                if v.get("subtype").and_then(Value::as_str) == Some("init") {
                    if let Some(id) = str_field(&v, "session_id") {
                        self.session_id = Some(id);
                    }
                    Vec::new()
                } else {
                    passthrough()
                }
            }
            Some("stream_event") => self.map_stream_event(v.get("event").unwrap_or(&Value::Null)),
            Some("assistant") => self.map_assistant(v.get("message").unwrap_or(&Value::Null)),
            Some("user") => map_user(v.get("message").unwrap_or(&Value::Null)),
            Some("result") => {
                self.record_result(&v);
                Vec::new()
            }
            _ => passthrough(),
        }
    }

    fn map_stream_event(&mut self, ev: &Value) -> Vec<Event> {
        match ev.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                self.current_stream_message = ev.get("message").and_then(|m| str_field(m, "id"));
                Vec::new()
            }
            Some("content_block_delta") => {
                let delta = ev.get("delta").unwrap_or(&Value::Null);
                if delta.get("type").and_then(Value::as_str) != Some("text_delta") {
                    return Vec::new();
                }
                let text = delta
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match &self.current_stream_message {
                    Some(id) => {
                        self.streamed_messages.insert(id.clone());
                    }
                    None => self.unattributed_stream_text = true,
                }
                if text.is_empty() {
                    Vec::new()
                } else {
                    vec![Event::TextDelta {
                        text: text.to_string(),
                    }]
                }
            }
            _ => Vec::new(),
        }
    }

    fn map_assistant(&mut self, msg: &Value) -> Vec<Event> {
        let skip_text = match str_field(msg, "id") {
            Some(id) if self.streamed_messages.contains(&id) => true,
            Some(_) => false,
            None => self.unattributed_stream_text,
        };
        if str_field(msg, "id").is_none() {
            self.unattributed_stream_text = false;
        }
        let mut out = Vec::new();
        for block in msg
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match block.get("type").and_then(Value::as_str) {
                Some("text") if !skip_text => {
                    if let Some(t) = block.get("text").and_then(Value::as_str) {
                        if !t.is_empty() {
                            out.push(Event::TextDelta {
                                text: t.to_string(),
                            });
                        }
                    }
                }
                Some("tool_use") => out.push(Event::ToolUse {
                    id: str_field(block, "id").unwrap_or_default(),
                    name: str_field(block, "name").unwrap_or_default(),
                    input: block.get("input").cloned().unwrap_or(Value::Null),
                }),
                _ => {}
            }
        }
        out
    }

    fn record_result(&mut self, v: &Value) {
        let subtype = str_field(v, "subtype");
        let is_error = v
            .get("is_error")
            .and_then(Value::as_bool)
            .unwrap_or_else(|| subtype.as_deref().is_some_and(|s| s != "success"));
        let session_id = str_field(v, "session_id");
        if let Some(id) = &session_id {
            self.session_id = Some(id.clone());
        }
        let mut usage = Map::new();
        for (from, to) in [
            ("usage", "usage"),
            ("total_cost_usd", "total_cost_usd"),
            ("num_turns", "num_turns"),
            ("duration_ms", "duration_ms"),
            ("duration_api_ms", "duration_api_ms"),
            ("subtype", "subtype"),
            ("modelUsage", "model_usage"),
        ] {
            if let Some(x) = v.get(from) {
                usage.insert(to.to_string(), x.clone());
            }
        }
        self.result = Some(CliResult {
            subtype,
            is_error,
            text: str_field(v, "result"),
            session_id: session_id.or_else(|| self.session_id.clone()),
            usage: if usage.is_empty() {
                None
            } else {
                Some(Value::Object(usage))
            },
        });
    }
}

fn map_user(msg: &Value) -> Vec<Event> {
    msg.get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|b| Event::ToolResult {
            tool_use_id: str_field(b, "tool_use_id").unwrap_or_default(),
            content: b.get("content").cloned().unwrap_or(Value::Null),
            is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map_all(lines: &[&str]) -> (Vec<Event>, StreamJsonMapper) {
        let mut m = StreamJsonMapper::new();
        let mut out = Vec::new();
        for l in lines {
            out.extend(m.map_line(l));
        }
        (out, m)
    }

    #[test]
    fn maps_without_partial_messages() {
        let (ev, m) = map_all(&[
            r#"{"type":"system","subtype":"init","session_id":"s-1","tools":["Bash"]}"#,
            r#"{"type":"assistant","message":{"id":"msg_1","content":[{"type":"text","text":"Hi"},{"type":"tool_use","id":"tu_1","name":"Bash","input":{"command":"ls"}}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"tu_1","content":"a\nb","is_error":false}]}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s-1","total_cost_usd":0.5,"usage":{"input_tokens":3}}"#,
        ]);
        assert_eq!(
            ev,
            vec![
                Event::TextDelta { text: "Hi".into() },
                Event::ToolUse {
                    id: "tu_1".into(),
                    name: "Bash".into(),
                    input: json!({"command":"ls"})
                },
                Event::ToolResult {
                    tool_use_id: "tu_1".into(),
                    content: json!("a\nb"),
                    is_error: false
                },
            ]
        );
        let r = m.result().unwrap();
        assert_eq!(r.text.as_deref(), Some("done"));
        assert_eq!(r.session_id.as_deref(), Some("s-1"));
        assert_eq!(
            r.usage,
            Some(json!({"usage":{"input_tokens":3},"total_cost_usd":0.5,"subtype":"success"}))
        );
    }

    #[test]
    fn partial_messages_are_not_duplicated() {
        let (ev, _) = map_all(&[
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"msg_2"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}}"#,
            r#"{"type":"assistant","message":{"id":"msg_2","content":[{"type":"text","text":"Hello"}]}}"#,
            r#"{"type":"assistant","message":{"id":"msg_3","content":[{"type":"text","text":"Unstreamed"}]}}"#,
        ]);
        assert_eq!(
            ev,
            vec![
                Event::TextDelta { text: "Hel".into() },
                Event::TextDelta { text: "lo".into() },
                Event::TextDelta {
                    text: "Unstreamed".into()
                },
            ]
        );
    }

    #[test]
    fn unknown_and_malformed_lines() {
        let (ev, m) = map_all(&[
            r#"{"type":"rate_limit_event","x":1}"#,
            r#"{"type":"system","subtype":"compact_boundary"}"#,
            "not json {",
            "[1,2]",
            "",
        ]);
        assert_eq!(
            ev,
            vec![
                Event::Stdout {
                    data: r#"{"type":"rate_limit_event","x":1}"#.into()
                },
                Event::Stdout {
                    data: r#"{"type":"system","subtype":"compact_boundary"}"#.into()
                },
                Event::Stderr {
                    data: "not json {".into()
                },
                Event::Stderr {
                    data: "[1,2]".into()
                },
            ]
        );
        assert!(m.result().is_none());
    }

    #[test]
    fn error_result_without_is_error_field() {
        let (_, m) = map_all(&[r#"{"type":"result","subtype":"error_max_turns"}"#]);
        assert!(m.result().unwrap().is_error);
    }
}
