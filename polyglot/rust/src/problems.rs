//! The error tree and its one mapping to HTTP: problem documents (RFC 9457), as the contract's
//! `Problem` schema says.
//!
//! Handlers and stores return [`ApiError`]; its `ResponseError` impl sets the status and headers
//! and leaves a [`ProblemParts`] in the response's extensions. The request-id middleware, which
//! knows the request's path and id, renders the body ([`render`]), so every error (a route's,
//! the router's 404 and 405, a middleware's 429) is written in one place, and no raw error text
//! ever reaches a client: the body holds only the fixed `detail` of the variant.

use actix_web::http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";
pub const GENERIC_DETAIL: &str = "The server could not complete the request.";
pub const INVALID_DETAIL: &str = "The request is invalid; see errors.";
pub const BAD_JSON_DETAIL: &str = "The request body is not valid JSON.";
pub const EMPTY_BODY: &str = "The request body is empty; send a JSON object.";
pub const WRONG_MEDIA_TYPE: &str = "The request body must be application/json.";

/// A dependency a request can fail on (the contract's `DependencyName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    Vault,
    Postgres,
    Mysql,
    Mongodb,
    Redis,
    Rabbitmq,
}

impl Dependency {
    pub const ALL: [Dependency; 6] = [
        Dependency::Vault,
        Dependency::Postgres,
        Dependency::Mysql,
        Dependency::Mongodb,
        Dependency::Redis,
        Dependency::Rabbitmq,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dependency::Vault => "vault",
            Dependency::Postgres => "postgres",
            Dependency::Mysql => "mysql",
            Dependency::Mongodb => "mongodb",
            Dependency::Redis => "redis",
            Dependency::Rabbitmq => "rabbitmq",
        }
    }

    pub fn from_name(name: &str) -> Option<Dependency> {
        Dependency::ALL.into_iter().find(|d| d.name() == name)
    }
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Path,
    Query,
    Header,
    Body,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub location: Location,
    pub field: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(location: Location, field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            location,
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// Everything a request can fail with. The `String`s are for logs (no secret, no server
/// text); what a client sees is decided by `status()` and `detail()`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid request: {0:?}")]
    Invalid(Vec<FieldError>),
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("body too large")]
    BodyTooLarge(usize),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed(Vec<&'static str>),
    #[error("no route")]
    NoRoute,
    #[error("rate limited")]
    RateLimited {
        reset_seconds: u64,
        limit: u64,
        window_seconds: u64,
    },
    #[error("{dependency} unavailable: {reason}")]
    Unavailable {
        dependency: Dependency,
        reason: String,
        retry_after: u32,
    },
    #[error("{dependency} timed out: {reason}")]
    Timeout {
        dependency: Dependency,
        reason: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn unavailable(dependency: Dependency, reason: impl Into<String>) -> Self {
        ApiError::Unavailable {
            dependency,
            reason: reason.into(),
            retry_after: 5,
        }
    }

    pub fn timeout(dependency: Dependency, reason: impl Into<String>) -> Self {
        ApiError::Timeout {
            dependency,
            reason: reason.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) | ApiError::InvalidValue(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's `detail`: written here, never copied from a server's error.
    pub fn detail(&self) -> String {
        match self {
            ApiError::NotFound(message) | ApiError::InvalidValue(message) => sentence(message),
            ApiError::Invalid(_) => INVALID_DETAIL.into(),
            ApiError::BodyTooLarge(limit) => {
                format!("The request body is larger than {limit} bytes.")
            }
            ApiError::UnsupportedMediaType => WRONG_MEDIA_TYPE.into(),
            ApiError::BadRequest(detail) => (*detail).into(),
            ApiError::MethodNotAllowed(_) => "This method is not allowed on this path.".into(),
            ApiError::NoRoute => "No resource exists at this path.".into(),
            ApiError::RateLimited { reset_seconds, .. } => {
                format!("Rate limit exceeded; retry after {reset_seconds} seconds.")
            }
            ApiError::Unavailable { dependency, .. } => format!("{dependency} is unavailable."),
            ApiError::Timeout { dependency, .. } => {
                format!("{dependency} did not answer in time.")
            }
            ApiError::Internal(_) => GENERIC_DETAIL.into(),
        }
    }

    pub fn parts(&self) -> ProblemParts {
        let status = self.status();
        ProblemParts {
            status,
            detail: self.detail(),
            dependency: match self {
                ApiError::Unavailable { dependency, .. } | ApiError::Timeout { dependency, .. } => {
                    Some(*dependency)
                }
                _ => None,
            },
            errors: match self {
                ApiError::Invalid(errors) if !errors.is_empty() => Some(errors.clone()),
                _ => None,
            },
        }
    }
}

/// What the request-id middleware needs to write a problem body.
#[derive(Debug, Clone)]
pub struct ProblemParts {
    pub status: StatusCode,
    pub detail: String,
    pub dependency: Option<Dependency>,
    pub errors: Option<Vec<FieldError>>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status());
        builder.insert_header((CONTENT_TYPE, PROBLEM_MEDIA_TYPE));
        match self {
            ApiError::Unavailable { retry_after, .. } => {
                builder.insert_header((RETRY_AFTER, (*retry_after).max(1).to_string()));
            }
            ApiError::MethodNotAllowed(methods) => {
                builder.insert_header((ALLOW, methods.join(", ")));
            }
            ApiError::RateLimited {
                reset_seconds,
                limit,
                window_seconds,
            } => {
                builder.insert_header((RETRY_AFTER, reset_seconds.to_string()));
                builder.insert_header(("RateLimit", format!("\"default\";r=0;t={reset_seconds}")));
                builder.insert_header((
                    "RateLimit-Policy",
                    format!("\"default\";q={limit};w={window_seconds}"),
                ));
            }
            _ => {}
        }
        let mut response = builder.finish();
        response.extensions_mut().insert(self.parts());
        response
    }
}

/// A library message as a `detail`: capitalised, ending with a full stop.
pub fn sentence(text: &str) -> String {
    let text = text.trim();
    let text = if text.is_empty() {
        "The request failed"
    } else {
        text
    };
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// RFC 9110 reason phrases (the problem's `title`).
pub fn reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        other => StatusCode::from_u16(other)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error"),
    }
}

/// RFC 3986 pchar and "/": what stays as it is in `instance`.
fn path_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"/!$&'()*+,;=:@-._~".contains(&b)
}

/// The request path, decoded, then percent-encoded again so it is a valid URI reference
/// (what the Python apps put in `instance`).
pub fn instance(raw_path: &str) -> String {
    let text = percent_decode(raw_path);
    let mut out = String::with_capacity(text.len());
    for b in text.as_bytes() {
        if path_safe(*b) {
            out.push(*b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding (UTF-8, invalid sequences replaced, as Python decodes a path).
pub fn percent_decode(raw_path: &str) -> String {
    let bytes = raw_path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                decoded.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    instance: String,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dependency: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

/// The problem document's JSON.
pub fn render(parts: &ProblemParts, path: &str, request_id: &str) -> Vec<u8> {
    let status = parts.status.as_u16();
    let body = ProblemBody {
        kind: "about:blank",
        title: reason(parts.status),
        status,
        detail: &parts.detail,
        instance: instance(path),
        request_id,
        dependency: parts
            .dependency
            .filter(|_| matches!(status, 503 | 504))
            .map(Dependency::name),
        errors: parts.errors.as_deref().filter(|_| status == 422),
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
}

pub fn content_type_value() -> HeaderValue {
    HeaderValue::from_static(PROBLEM_MEDIA_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(parts: &ProblemParts, path: &str) -> serde_json::Value {
        serde_json::from_slice(&render(parts, path, "rid-1")).expect("json")
    }

    #[test]
    fn a_dependency_outage_is_503_with_retry_after() {
        let err = ApiError::unavailable(Dependency::Postgres, "connection refused");
        let response = err.error_response();
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
        let body = json(&err.parts(), "/examples/postgres/query");
        assert_eq!(
            body,
            serde_json::json!({
                "type": "about:blank", "title": "Service Unavailable", "status": 503,
                "detail": "postgres is unavailable.", "instance": "/examples/postgres/query",
                "request_id": "rid-1", "dependency": "postgres"
            })
        );
        assert!(!body.to_string().contains("connection refused"));
    }

    #[test]
    fn titles_are_rfc_9110_phrases() {
        assert_eq!(reason(StatusCode::PAYLOAD_TOO_LARGE), "Content Too Large");
        assert_eq!(
            reason(StatusCode::UNPROCESSABLE_ENTITY),
            "Unprocessable Content"
        );
        assert_eq!(reason(StatusCode::GATEWAY_TIMEOUT), "Gateway Timeout");
        assert_eq!(reason(StatusCode::TOO_MANY_REQUESTS), "Too Many Requests");
    }

    #[test]
    fn errors_only_on_422_and_dependency_only_on_503_504() {
        let invalid = ApiError::Invalid(vec![FieldError::new(Location::Path, "key", "bad")]);
        let body = json(&invalid.parts(), "/examples/cache/a*b");
        assert_eq!(body["errors"][0]["location"], "path");
        assert!(body.get("dependency").is_none());
        let missing = ApiError::NotFound("cache key 'x' does not exist".into());
        let body = json(&missing.parts(), "/x");
        assert!(body.get("errors").is_none());
        assert_eq!(body["detail"], "Cache key 'x' does not exist.");
        let timeout = ApiError::timeout(Dependency::Redis, "slow");
        assert_eq!(json(&timeout.parts(), "/x")["dependency"], "redis");
    }

    #[test]
    fn instance_is_the_path_reencoded() {
        assert_eq!(
            instance("/examples/cache/bad%20key"),
            "/examples/cache/bad%20key"
        );
        assert_eq!(instance("/examples/cache/%41b"), "/examples/cache/Ab");
        assert_eq!(instance("/a*b"), "/a*b");
        assert_eq!(instance("/caf%C3%A9"), "/caf%C3%A9");
        assert_eq!(instance("/x%"), "/x%25");
    }

    #[test]
    fn sentences() {
        assert_eq!(
            sentence("no mongodb item has this id"),
            "No mongodb item has this id."
        );
        assert_eq!(sentence("done!"), "Done!");
        assert_eq!(sentence(""), "The request failed.");
    }
}
