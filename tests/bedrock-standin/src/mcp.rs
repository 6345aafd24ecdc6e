//! An MCP server stand-in (streamable HTTP transport, JSON answers, no sessions): enough
//! for Claude Code to connect, list one tool (`lookup`) and call it. It records the
//! headers of every request, so a test can prove the egress proxy injected the
//! credential that the sandbox never saw.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use crate::serve::{respond, serve, Received, Serving};
use crate::TestCa;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Value};

/// One request the MCP stand-in received.
#[derive(Clone, Debug)]
pub struct McpSeen {
    pub method: String,
    pub headers: http::HeaderMap,
    /// The JSON-RPC method (`initialize`, `tools/list`, ...), if any.
    pub rpc: Option<String>,
}

/// A running MCP stand-in; stops when dropped.
pub struct McpStandIn {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<McpSeen>>>,
    _serving: Serving,
}

impl McpStandIn {
    /// Serves HTTPS for `host` on a loopback port with a certificate from `ca`.
    pub async fn start(
        ca: &TestCa,
        host: &str,
    ) -> Result<McpStandIn, Box<dyn std::error::Error + Send + Sync>> {
        let tls = ca.server_config(&[host])?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let serving = serve(tls, move |req| {
            let s = s.clone();
            async move { handle(&s, req) }
        })
        .await?;
        Ok(McpStandIn {
            addr: serving.addr,
            seen,
            _serving: serving,
        })
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<McpSeen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn handle(seen: &Mutex<Vec<McpSeen>>, req: Received) -> Response<Full<Bytes>> {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let rpc = body["method"].as_str().map(str::to_string);
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(McpSeen {
            method: req.method.to_string(),
            headers: req.headers.clone(),
            rpc: rpc.clone(),
        });
    if req.method != http::Method::POST {
        // No server-initiated stream (GET) and no sessions to end (DELETE).
        return respond(405, "text/plain", &[], "method not allowed");
    }
    let id = body["id"].clone();
    if id.is_null() {
        // A notification: accepted, no answer.
        return respond(202, "text/plain", &[], Bytes::new());
    }
    let result = match rpc.as_deref() {
        Some("initialize") => json!({
            "protocolVersion": body["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
            "capabilities": { "tools": { "listChanged": false } },
            "serverInfo": { "name": "mcp-standin", "version": "1.0.0" }
        }),
        Some("tools/list") => json!({ "tools": [{
            "name": "lookup",
            "description": "Looks a word up (stand-in).",
            "inputSchema": { "type": "object", "properties": { "word": { "type": "string" } } }
        }] }),
        Some("tools/call") => json!({
            "content": [{ "type": "text", "text": "stand-in lookup result" }],
            "isError": false
        }),
        Some("ping") => json!({}),
        _ => {
            return respond(
                200,
                "application/json",
                &[],
                json!({ "jsonrpc": "2.0", "id": id,
                        "error": { "code": -32601, "message": "method not found" } })
                .to_string(),
            )
        }
    };
    respond(
        200,
        "application/json",
        &[],
        json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string(),
    )
}
