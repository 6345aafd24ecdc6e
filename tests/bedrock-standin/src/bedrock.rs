//! The Bedrock runtime stand-in: routes, scripted replies, and the record of every
//! request (see the crate docs for what of Bedrock it implements).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use crate::serve::{respond, serve, Received, Serving};
use crate::sigv4::{self, Key};
use crate::TestCa;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Value};

/// The tool call the scripted assistant makes when a request offers tools.
#[derive(Clone, Debug)]
pub enum ToolCall {
    /// `Bash` with this command.
    Bash { command: String },
    /// `Write` of `content` to the absolute `file_path`.
    Write { file_path: String, content: String },
}

/// The assistant's side of a turn. A request with tools whose last user message holds
/// no `tool_result` gets `before` then a `tool_use` of `tool`; one with a
/// `tool_result` (or without tools, e.g. the CLI's own side requests) gets `after`.
#[derive(Clone, Debug)]
pub struct Script {
    pub before: String,
    pub tool: Option<ToolCall>,
    pub after: String,
    /// Token counts reported for every reply.
    pub usage: Usage,
}

/// The usage every reply reports (`message_start` / `message_delta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            before: "I will run it.".into(),
            tool: None,
            after: "Done.".into(),
            usage: Usage {
                input_tokens: 1200,
                output_tokens: 40,
            },
        }
    }
}

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path as sent (`/model/<id>/<operation>`).
    pub path: String,
    /// The model id, percent-decoded.
    pub model: String,
    /// `invoke` or `invoke-with-response-stream` (or the unknown operation).
    pub operation: String,
    pub headers: http::HeaderMap,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// The signature check: `Ok` or why it failed.
    pub signature: Result<(), String>,
}

impl Seen {
    /// Names of the tools the request offered.
    pub fn tool_names(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The system prompt, its text blocks joined.
    pub fn system_text(&self) -> String {
        match &self.body["system"] {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

struct State {
    key: Key,
    script: Mutex<Script>,
    seen: Mutex<Vec<Seen>>,
}

/// A running stand-in; stops when dropped.
pub struct BedrockStandIn {
    pub addr: SocketAddr,
    /// The host name its certificate is for.
    pub host: String,
    state: Arc<State>,
    _serving: Serving,
}

impl BedrockStandIn {
    /// Serves `bedrock-runtime.<region>.amazonaws.com` on a loopback port, with a
    /// certificate from `ca`, accepting signatures by `key`.
    pub async fn start(
        ca: &TestCa,
        key: Key,
        script: Script,
    ) -> Result<BedrockStandIn, Box<dyn std::error::Error + Send + Sync>> {
        let host = format!("bedrock-runtime.{}.amazonaws.com", key.region);
        let tls = ca.server_config(&[&host])?;
        let state = Arc::new(State {
            key,
            script: Mutex::new(script),
            seen: Mutex::new(Vec::new()),
        });
        let s = state.clone();
        let serving = serve(tls, move |req| {
            let s = s.clone();
            async move { handle(&s, req) }
        })
        .await?;
        Ok(BedrockStandIn {
            addr: serving.addr,
            host,
            state,
            _serving: serving,
        })
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state.seen).clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear(&self) {
        lock(&self.state.seen).clear();
    }

    /// Replaces the script for later requests.
    pub fn set_script(&self, script: Script) {
        *lock(&self.state.script) = script;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const JSON: &str = "application/json";

fn bedrock_error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        JSON,
        &[("x-amzn-errortype", kind)],
        json!({ "message": message }).to_string(),
    )
}

fn handle(state: &State, req: Received) -> Response<Full<Bytes>> {
    let signature = sigv4::verify(&req, &state.key);
    let path = req.target.split('?').next().unwrap_or("").to_string();
    let segments: Vec<&str> = path.split('/').collect();
    let (model, operation) = match segments[..] {
        ["", "model", id, op] => (percent_decode(id), op.to_string()),
        _ => (String::new(), String::new()),
    };
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let seen = Seen {
        method: req.method.to_string(),
        path: path.clone(),
        model: model.clone(),
        operation: operation.clone(),
        headers: req.headers.clone(),
        body: body.clone(),
        signature: signature.clone(),
    };
    lock(&state.seen).push(seen);
    if let Err(why) = signature {
        return bedrock_error(
            403,
            "InvalidSignatureException",
            &format!("The request signature we calculated does not match the signature you provided. ({why})"),
        );
    }
    if req.method != http::Method::POST {
        return bedrock_error(405, "UnknownOperationException", "method not allowed");
    }
    let script = lock(&state.script).clone();
    let reply = Reply::for_request(&script, &body);
    let request_id = format!("standin-{}", lock(&state.seen).len());
    match operation.as_str() {
        "invoke-with-response-stream" => {
            match crate::eventstream::encode(&reply.stream_events(&model)) {
                Ok(bytes) => respond(
                    200,
                    "application/vnd.amazon.eventstream",
                    &[
                        ("x-amzn-requestid", &request_id),
                        ("x-amzn-bedrock-content-type", JSON),
                    ],
                    bytes,
                ),
                Err(e) => bedrock_error(500, "InternalServerException", &e),
            }
        }
        "invoke" => respond(
            200,
            JSON,
            &[("x-amzn-requestid", &request_id)],
            reply.message(&model).to_string(),
        ),
        _ => bedrock_error(404, "UnknownOperationException", "unknown operation"),
    }
}

/// What the scripted assistant answers to one request.
struct Reply {
    text: String,
    tool: Option<(String, String, Value)>,
    usage: Usage,
}

impl Reply {
    fn for_request(script: &Script, body: &Value) -> Reply {
        let offers_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
        let answered = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_array())
            .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
        let message_count = body["messages"]
            .as_array()
            .map(|m| m.len())
            .unwrap_or_default();
        match (&script.tool, offers_tools && !answered) {
            (Some(tool), true) => {
                let (name, input) = match tool {
                    ToolCall::Bash { command } => (
                        "Bash",
                        json!({ "command": command, "description": "Run the scripted command" }),
                    ),
                    ToolCall::Write { file_path, content } => (
                        "Write",
                        json!({ "file_path": file_path, "content": content }),
                    ),
                };
                Reply {
                    text: script.before.clone(),
                    tool: Some((
                        format!("toolu_standin_{message_count:04}"),
                        name.into(),
                        input,
                    )),
                    usage: script.usage,
                }
            }
            _ => Reply {
                text: script.after.clone(),
                tool: None,
                usage: script.usage,
            },
        }
    }

    fn stop_reason(&self) -> &'static str {
        if self.tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        }
    }

    /// The non-streaming answer (`invoke`).
    fn message(&self, model: &str) -> Value {
        let mut content = vec![json!({ "type": "text", "text": self.text })];
        if let Some((id, name, input)) = &self.tool {
            content.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
        }
        json!({
            "id": "msg_standin",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": self.stop_reason(),
            "stop_sequence": null,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0
            }
        })
    }

    /// The streamed answer (`invoke-with-response-stream`): Anthropic Messages events,
    /// the text in a few deltas, the tool input as partial JSON.
    fn stream_events(&self, model: &str) -> Vec<Value> {
        let mut ev = vec![json!({
            "type": "message_start",
            "message": {
                "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {
                    "input_tokens": self.usage.input_tokens, "output_tokens": 1,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0
                }
            }
        })];
        ev.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
        for piece in split_words(&self.text) {
            ev.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}));
        }
        ev.push(json!({"type": "content_block_stop", "index": 0}));
        if let Some((id, name, input)) = &self.tool {
            ev.push(json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}));
            let partial = input.to_string();
            let mid = partial.len() / 2;
            let mid = (mid..partial.len())
                .find(|i| partial.is_char_boundary(*i))
                .unwrap_or(partial.len());
            for part in [&partial[..mid], &partial[mid..]] {
                ev.push(json!({"type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": part}}));
            }
            ev.push(json!({"type": "content_block_stop", "index": 1}));
        }
        ev.push(json!({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason(), "stop_sequence": null},
            "usage": {"output_tokens": self.usage.output_tokens}
        }));
        ev.push(json!({
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": self.usage.input_tokens,
                "outputTokenCount": self.usage.output_tokens,
                "invocationLatency": 5, "firstByteLatency": 1
            }
        }));
        ev
    }
}

/// `"a b c"` as `["a ", "b ", "c"]`: several deltas, as a model streams.
fn split_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text.split_inclusive(' ').map(str::to_string).collect();
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash() -> Script {
        Script {
            tool: Some(ToolCall::Bash {
                command: "echo hi > f".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn offers_the_tool_then_finishes_after_its_result() {
        let first =
            json!({"tools": [{"name": "Bash"}], "messages": [{"role": "user", "content": "go"}]});
        let r = Reply::for_request(&bash(), &first);
        let events = r.stream_events("m");
        let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(types.first(), Some(&"message_start"));
        assert_eq!(types.last(), Some(&"message_stop"));
        let input: String = events
            .iter()
            .filter_map(|e| e["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&input).unwrap()["command"],
            "echo hi > f"
        );
        assert_eq!(r.stop_reason(), "tool_use");

        let second = json!({"tools": [{"name": "Bash"}], "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x"}]}]});
        let r = Reply::for_request(&bash(), &second);
        assert!(r.tool.is_none());
        assert_eq!(r.message("m")["content"][0]["text"], "Done.");
        // A side request without tools never gets a tool call.
        assert!(Reply::for_request(&bash(), &json!({"messages": []}))
            .tool
            .is_none());
    }

    /// One HTTP/1.1 exchange with the stand-in over TLS, trusting only the test CA:
    /// (status, headers, body).
    async fn exchange(ca: &TestCa, s: &BedrockStandIn, req: &Received) -> (u16, String, Vec<u8>) {
        use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
            .unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect(ServerName::try_from(s.host.clone()).unwrap(), tcp)
            .await
            .expect("the stand-in's certificate is valid for Bedrock's host name");
        let mut head = format!(
            "POST {} HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n",
            req.target,
            req.body.len()
        );
        for (k, v) in &req.headers {
            head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
        }
        head.push_str("\r\n");
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(&req.body).await.unwrap();
        let mut raw = Vec::new();
        let _ = tls.read_to_end(&mut raw).await;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let status = head[9..12].parse().unwrap();
        let mut body = raw[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        (status, head, body)
    }

    fn dechunk(mut b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
            let n =
                usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap(), 16).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&b[line_end + 2..line_end + 2 + n]);
            b = &b[line_end + 4 + n..];
        }
    }

    /// The server end to end: TLS for Bedrock's host name, a signed `invoke` answered
    /// in JSON, a signed stream answered in CRC-checked event-stream frames with the
    /// scripted tool call, and unsigned or wrongly signed requests refused with
    /// Bedrock's 403, every one recorded.
    #[tokio::test]
    async fn answers_signed_requests_and_refuses_bad_signatures() {
        let ca = TestCa::new().unwrap();
        let key = Key {
            access_key_id: "AKIDSTANDIN".into(),
            secret_access_key: "standin-secret".into(),
            session_token: None,
            region: "us-east-1".into(),
        };
        let s = BedrockStandIn::start(&ca, key.clone(), bash())
            .await
            .unwrap();
        let model = "/model/us.anthropic.claude-x-v1%3A0";

        let invoke = crate::sigv4::signed_request(&key, &format!("{model}/invoke"), b"{}");
        let (status, head, body) = exchange(&ca, &s, &invoke).await;
        assert_eq!(status, 200, "{head}");
        let msg: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(msg["content"][0]["text"], "Done.");
        assert_eq!(msg["model"], "us.anthropic.claude-x-v1:0");

        let with_tools =
            json!({"tools": [{"name": "Bash"}], "messages": [{"role": "user", "content": "go"}]});
        let stream = crate::sigv4::signed_request(
            &key,
            &format!("{model}/invoke-with-response-stream"),
            with_tools.to_string().as_bytes(),
        );
        let (status, head, body) = exchange(&ca, &s, &stream).await;
        assert_eq!(status, 200);
        assert!(
            head.contains("content-type: application/vnd.amazon.eventstream"),
            "{head}"
        );
        let events = crate::eventstream::decode(&body).unwrap();
        assert!(events
            .iter()
            .any(|e| e["content_block"]["type"] == "tool_use"
                && e["content_block"]["name"] == "Bash"));

        let mut unsigned = invoke.clone_without_auth();
        let (status, head, body) = exchange(&ca, &s, &unsigned).await;
        assert_eq!(status, 403);
        assert!(
            head.contains("x-amzn-errortype: invalidsignatureexception"),
            "{head}"
        );
        assert!(String::from_utf8_lossy(&body).contains("signature"));
        let wrong = Key {
            secret_access_key: "not-the-secret".into(),
            ..key.clone()
        };
        unsigned = crate::sigv4::signed_request(&wrong, &format!("{model}/invoke"), b"{}");
        assert_eq!(exchange(&ca, &s, &unsigned).await.0, 403);

        let seen = s.seen();
        assert_eq!(seen.len(), 4);
        assert_eq!(
            seen.iter().map(|q| q.signature.is_ok()).collect::<Vec<_>>(),
            [true, true, false, false]
        );
        assert_eq!(seen[1].tool_names(), ["Bash"]);
    }

    #[test]
    fn model_ids_are_percent_decoded() {
        assert_eq!(
            percent_decode("us.anthropic.x-v1%3A0"),
            "us.anthropic.x-v1:0"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
