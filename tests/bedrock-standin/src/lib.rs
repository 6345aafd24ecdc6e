//! Stands in for Amazon Bedrock in tests: a small HTTPS server that answers the two
//! runtime calls Claude Code makes when `CLAUDE_CODE_USE_BEDROCK=1`, so that a real
//! CLI can complete real turns on a machine that cannot (and must not) reach AWS.
//! Test code only: it never runs in production and nothing in it is a credential.
//!
//! What of Bedrock it implements (`bedrock-runtime.<region>.amazonaws.com`):
//!
//! * `POST /model/{modelId}/invoke-with-response-stream`: `200`,
//!   `content-type: application/vnd.amazon.eventstream`, one event-stream message per
//!   Anthropic Messages stream event (`message_start`, `content_block_start`,
//!   `content_block_delta` with `text_delta` / `input_json_delta`,
//!   `content_block_stop`, `message_delta`, `message_stop` with
//!   `amazon-bedrock-invocationMetrics`). Each message has the headers
//!   `:event-type: chunk`, `:content-type: application/json`, `:message-type: event` and
//!   the payload `{"bytes": "<base64 of the event's JSON>"}`, framed with the AWS
//!   event-stream encoding (prelude with total and header lengths, prelude CRC32,
//!   headers, payload, message CRC32) by `aws-smithy-eventstream`, the SDKs' own codec.
//! * `POST /model/{modelId}/invoke`: `200 application/json`, one Anthropic Messages
//!   response.
//! * SigV4 on every request (service `bedrock`, the configured region and key): the
//!   signature is recomputed from the headers the request says it signed; a missing or
//!   wrong one is `403` with `x-amzn-ErrorType: InvalidSignatureException` and Bedrock's
//!   message, and nothing is answered. Other paths are `404
//!   UnknownOperationException`.
//!
//! What it does not implement: model ids are not checked, nothing is generated: the
//! replies come from a [`Script`] (text, then a `tool_use` of `Bash` or `Write` when the
//! request offers tools, then text once the tool's result comes back); no throttling,
//! guardrails, Converse API, or `count-tokens`. Every request is recorded ([`Seen`]):
//! path, headers, JSON body and the signature check, for tests to assert on (the tool
//! list and system prompt the CLI sent, that every request was signed).
//!
//! [`mcp`] is the same idea for an MCP server (streamable HTTP, JSON answers) that
//! records the headers it receives, and [`tls`] the throw-away CA both serve with.

#![forbid(unsafe_code)]

pub mod bedrock;
pub mod eventstream;
pub mod mcp;
mod serve;
pub mod sigv4;
pub mod tls;

pub use bedrock::{BedrockStandIn, Script, Seen, ToolCall, Usage};
pub use mcp::McpStandIn;
pub use tls::TestCa;
