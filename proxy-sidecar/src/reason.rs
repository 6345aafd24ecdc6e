//! Refusal reasons: status code, machine-readable code and response.
//!
//! Every response the proxy itself produces for a refused or failed request carries
//! `X-Proxy-Reason: <code>` (the stable, machine-readable reason), an RFC 9209
//! `Proxy-Status` header, and a one-line plain-text body. The codes are part of the
//! proxy's contract and are listed in `docs/proxy.md`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::guard::{AddressClass, Denied};

/// Header carrying the machine-readable refusal reason.
pub const REASON_HEADER: &str = "x-proxy-reason";
/// Identity used in `Proxy-Status`.
pub const PROXY_NAME: &str = "workspace-egress-proxy";

/// Why the proxy refused or failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    BadRequest,
    InvalidHost,
    InvalidPort,
    UserinfoNotAllowed,
    UnsupportedScheme,
    HostMismatch,
    HeadersTooLarge,
    HostNotAllowed,
    HostDenied,
    PortNotAllowed,
    Address(AddressClass),
    AddressSelf,
    ConnectToInjectedHost,
    GatewayDisabled,
    GatewayPathNotAllowed,
    GatewayMethodNotAllowed,
    /// TRACE and TRACK: they echo the request (headers the proxy added included).
    MethodNotAllowed,
    PresignedRequest,
    StreamingSignedRequest,
    Sigv4aRequest,
    BodyTooLarge,
    TooManyRequests,
    TooManyTunnels,
    DnsFailed,
    DnsTimeout,
    ConnectFailed,
    ConnectTimeout,
    TlsFailed,
    UpstreamError,
    UpstreamTimeout,
    CredentialsUnavailable,
    ShuttingDown,
}

impl Reason {
    /// Every reason, for documentation and exhaustive tests.
    pub const ALL: &'static [Reason] = &[
        Reason::BadRequest,
        Reason::InvalidHost,
        Reason::InvalidPort,
        Reason::UserinfoNotAllowed,
        Reason::UnsupportedScheme,
        Reason::HostMismatch,
        Reason::HeadersTooLarge,
        Reason::HostNotAllowed,
        Reason::HostDenied,
        Reason::PortNotAllowed,
        Reason::Address(AddressClass::Unspecified),
        Reason::Address(AddressClass::Loopback),
        Reason::Address(AddressClass::Private),
        Reason::Address(AddressClass::Cgnat),
        Reason::Address(AddressClass::LinkLocal),
        Reason::Address(AddressClass::Metadata),
        Reason::Address(AddressClass::Multicast),
        Reason::Address(AddressClass::Broadcast),
        Reason::Address(AddressClass::Reserved),
        Reason::AddressSelf,
        Reason::ConnectToInjectedHost,
        Reason::GatewayDisabled,
        Reason::GatewayPathNotAllowed,
        Reason::GatewayMethodNotAllowed,
        Reason::MethodNotAllowed,
        Reason::PresignedRequest,
        Reason::StreamingSignedRequest,
        Reason::Sigv4aRequest,
        Reason::BodyTooLarge,
        Reason::TooManyRequests,
        Reason::TooManyTunnels,
        Reason::DnsFailed,
        Reason::DnsTimeout,
        Reason::ConnectFailed,
        Reason::ConnectTimeout,
        Reason::TlsFailed,
        Reason::UpstreamError,
        Reason::UpstreamTimeout,
        Reason::CredentialsUnavailable,
        Reason::ShuttingDown,
    ];

    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        use AddressClass as A;
        match self {
            Reason::BadRequest => "bad_request",
            Reason::InvalidHost => "invalid_host",
            Reason::InvalidPort => "invalid_port",
            Reason::UserinfoNotAllowed => "userinfo_not_allowed",
            Reason::UnsupportedScheme => "unsupported_scheme",
            Reason::HostMismatch => "host_mismatch",
            Reason::HeadersTooLarge => "headers_too_large",
            Reason::HostNotAllowed => "host_not_allowed",
            Reason::HostDenied => "host_denied",
            Reason::PortNotAllowed => "port_not_allowed",
            Reason::Address(A::Unspecified) => "address_unspecified",
            Reason::Address(A::Loopback) => "address_loopback",
            Reason::Address(A::Private) => "address_private",
            Reason::Address(A::Cgnat) => "address_cgnat",
            Reason::Address(A::LinkLocal) => "address_link_local",
            Reason::Address(A::Metadata) => "address_metadata",
            Reason::Address(A::Multicast) => "address_multicast",
            Reason::Address(A::Broadcast) => "address_broadcast",
            Reason::Address(A::Reserved) => "address_reserved",
            Reason::AddressSelf => "address_self",
            Reason::ConnectToInjectedHost => "connect_to_injected_host",
            Reason::GatewayDisabled => "gateway_disabled",
            Reason::GatewayPathNotAllowed => "gateway_path_not_allowed",
            Reason::GatewayMethodNotAllowed => "gateway_method_not_allowed",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::PresignedRequest => "presigned_request",
            Reason::StreamingSignedRequest => "streaming_signed_request",
            Reason::Sigv4aRequest => "sigv4a_request",
            Reason::BodyTooLarge => "body_too_large",
            Reason::TooManyRequests => "too_many_requests",
            Reason::TooManyTunnels => "too_many_tunnels",
            Reason::DnsFailed => "dns_failed",
            Reason::DnsTimeout => "dns_timeout",
            Reason::ConnectFailed => "connect_failed",
            Reason::ConnectTimeout => "connect_timeout",
            Reason::TlsFailed => "tls_failed",
            Reason::UpstreamError => "upstream_error",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::CredentialsUnavailable => "credentials_unavailable",
            Reason::ShuttingDown => "shutting_down",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Reason::BadRequest
            | Reason::InvalidHost
            | Reason::InvalidPort
            | Reason::UserinfoNotAllowed
            | Reason::UnsupportedScheme
            | Reason::PresignedRequest
            | Reason::StreamingSignedRequest
            | Reason::Sigv4aRequest => StatusCode::BAD_REQUEST,
            Reason::HostMismatch => StatusCode::MISDIRECTED_REQUEST,
            Reason::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reason::HostNotAllowed
            | Reason::HostDenied
            | Reason::PortNotAllowed
            | Reason::Address(_)
            | Reason::AddressSelf
            | Reason::ConnectToInjectedHost
            | Reason::GatewayDisabled
            | Reason::GatewayPathNotAllowed => StatusCode::FORBIDDEN,
            Reason::GatewayMethodNotAllowed | Reason::MethodNotAllowed => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            Reason::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::TooManyRequests | Reason::TooManyTunnels => StatusCode::TOO_MANY_REQUESTS,
            Reason::DnsFailed
            | Reason::ConnectFailed
            | Reason::TlsFailed
            | Reason::UpstreamError
            | Reason::CredentialsUnavailable => StatusCode::BAD_GATEWAY,
            Reason::DnsTimeout | Reason::ConnectTimeout | Reason::UpstreamTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Reason::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whether this is a policy decision (as opposed to a client error or an
    /// upstream failure). Counted in `workspace_proxy_blocked_total`.
    pub fn is_block(self) -> bool {
        self.status() == StatusCode::FORBIDDEN
            || matches!(
                self,
                Reason::PresignedRequest | Reason::StreamingSignedRequest | Reason::Sigv4aRequest
            )
    }

    /// RFC 9209 error type for `Proxy-Status`.
    pub fn proxy_status_error(self) -> &'static str {
        match self {
            Reason::Address(_) => "destination_ip_prohibited",
            Reason::AddressSelf => "proxy_loop_detected",
            Reason::HostNotAllowed
            | Reason::HostDenied
            | Reason::PortNotAllowed
            | Reason::ConnectToInjectedHost
            | Reason::GatewayDisabled
            | Reason::GatewayPathNotAllowed
            | Reason::GatewayMethodNotAllowed
            | Reason::MethodNotAllowed
            | Reason::PresignedRequest
            | Reason::StreamingSignedRequest
            | Reason::Sigv4aRequest => "http_request_denied",
            Reason::TooManyRequests | Reason::TooManyTunnels => "connection_limit_reached",
            Reason::DnsFailed => "dns_error",
            Reason::DnsTimeout => "dns_timeout",
            Reason::ConnectFailed => "connection_refused",
            Reason::ConnectTimeout => "connection_timeout",
            Reason::TlsFailed => "tls_protocol_error",
            Reason::UpstreamError => "connection_terminated",
            Reason::UpstreamTimeout => "connection_read_timeout",
            Reason::CredentialsUnavailable => "proxy_internal_error",
            Reason::ShuttingDown => "proxy_internal_response",
            Reason::BadRequest
            | Reason::InvalidHost
            | Reason::InvalidPort
            | Reason::UserinfoNotAllowed
            | Reason::UnsupportedScheme
            | Reason::HostMismatch
            | Reason::HeadersTooLarge
            | Reason::BodyTooLarge => "http_request_error",
        }
    }

    /// Short human-readable explanation.
    pub fn message(self) -> &'static str {
        use AddressClass as A;
        match self {
            Reason::BadRequest => "malformed proxy request",
            Reason::InvalidHost => "invalid host",
            Reason::InvalidPort => "invalid or missing port",
            Reason::UserinfoNotAllowed => "credentials in the URL authority are not allowed",
            Reason::UnsupportedScheme => "only http:// URLs can be forwarded; use CONNECT for TLS",
            Reason::HostMismatch => "Host header does not match the request target",
            Reason::HeadersTooLarge => "request headers too large",
            Reason::HostNotAllowed => "host is not on the egress allowlist",
            Reason::HostDenied => "host is on the egress denylist",
            Reason::PortNotAllowed => "port is not allowed for this host",
            Reason::Address(A::Unspecified) => "destination address is unspecified",
            Reason::Address(A::Loopback) => "destination address is loopback",
            Reason::Address(A::Private) => "destination address is private",
            Reason::Address(A::Cgnat) => "destination address is shared (CGNAT) space",
            Reason::Address(A::LinkLocal) => "destination address is link-local",
            Reason::Address(A::Metadata) => "destination address is a cloud metadata service",
            Reason::Address(A::Multicast) => "destination address is multicast",
            Reason::Address(A::Broadcast) => "destination address is broadcast",
            Reason::Address(A::Reserved) => "destination address is reserved",
            Reason::AddressSelf => "destination is the proxy itself",
            Reason::ConnectToInjectedHost => {
                "this host receives injected credentials: send plain http:// requests through the proxy instead of CONNECT"
            }
            Reason::GatewayDisabled => "the Bedrock gateway is not enabled for this workspace",
            Reason::GatewayPathNotAllowed => "path is not a Bedrock runtime invocation",
            Reason::GatewayMethodNotAllowed => "the Bedrock gateway accepts POST only",
            Reason::MethodNotAllowed => {
                "TRACE and TRACK are refused: they would echo the request, injected headers included"
            }
            Reason::PresignedRequest => "presigned requests are refused; the proxy signs requests",
            Reason::StreamingSignedRequest => {
                "streaming-signed (aws-chunked) requests are refused; the proxy signs requests"
            }
            Reason::Sigv4aRequest => "SigV4A requests are refused; the proxy signs requests",
            Reason::BodyTooLarge => "request body too large",
            Reason::TooManyRequests => "too many concurrent requests",
            Reason::TooManyTunnels => "too many concurrent tunnels",
            Reason::DnsFailed => "name could not be resolved",
            Reason::DnsTimeout => "name resolution timed out",
            Reason::ConnectFailed => "could not connect to upstream",
            Reason::ConnectTimeout => "connecting to upstream timed out",
            Reason::TlsFailed => "TLS handshake with upstream failed",
            Reason::UpstreamError => "upstream connection failed",
            Reason::UpstreamTimeout => "upstream did not answer in time",
            Reason::CredentialsUnavailable => "the proxy could not obtain AWS credentials",
            Reason::ShuttingDown => "proxy is shutting down",
        }
    }

    /// Reason for a guard denial.
    pub fn from_denied(d: Denied) -> Reason {
        match d {
            Denied::Class(c) => Reason::Address(c),
            Denied::OwnAddress => Reason::AddressSelf,
        }
    }

    /// Build the refusal response. `subject` (host or target, already canonical) is
    /// echoed in the body to help the person reading it.
    pub fn response<B: From<Bytes>>(self, subject: Option<&str>) -> Response<B> {
        let body = match subject {
            Some(s) => format!(
                "{} {}: {} ({}) [{}]\n",
                self.status().as_u16(),
                self.status().canonical_reason().unwrap_or(""),
                self.message(),
                s,
                self.code()
            ),
            None => format!(
                "{} {}: {} [{}]\n",
                self.status().as_u16(),
                self.status().canonical_reason().unwrap_or(""),
                self.message(),
                self.code()
            ),
        };
        let mut resp = Response::new(B::from(Bytes::from(body)));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(REASON_HEADER, HeaderValue::from_static(self.code()));
        let status = format!(
            "{PROXY_NAME}; error={}; details=\"{}\"",
            self.proxy_status_error(),
            self.code()
        );
        if let Ok(v) = HeaderValue::from_str(&status) {
            h.insert("proxy-status", v);
        }
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if matches!(self, Reason::TooManyRequests | Reason::TooManyTunnels) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self == Reason::ShuttingDown {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.code()), "duplicate code {}", r.code());
            assert!(r
                .code()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert!(r.status().is_client_error() || r.status().is_server_error());
        }
    }
}
