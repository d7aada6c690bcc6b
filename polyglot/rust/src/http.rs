//! The HTTP side: the app (routes, CORS, the request middleware) and the two listeners.
//!
//! [`request_context`] wraps every request, outermost:
//! 1. the request id: the caller's `X-Request-ID` when sane (1-128 of `A-Za-z0-9._:+/=-`),
//!    else a new UUID v4; echoed on every response and repeated in problem documents;
//! 2. the rate limit on `/examples/**` when configured (counted in Redis; a limiter that cannot
//!    reach Redis lets the request through);
//! 3. the handler, with a panic caught: a handler's failure is a 500 problem document, and the
//!    worker goes on serving;
//! 4. problem bodies rendered (every error response is one), metrics by route template.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_cors::Cors;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::middleware::{from_fn, Condition, Next};
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use futures_util::FutureExt;

use crate::config::Settings;
use crate::problems::{self, ApiError, ProblemParts};
use crate::ratelimit;
use crate::routes;
use crate::state::Stack;

pub const REQUEST_ID: &str = "x-request-id";
const UNMATCHED: &str = "<unmatched>";

/// A caller's request id is kept when it is 1 to 128 of `A-Z a-z 0-9 . _ : + / = -`.
pub fn sane_request_id(value: Option<&HeaderValue>) -> Option<String> {
    let text = value?.to_str().ok()?;
    let ok = (1..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:+/=-".contains(&b));
    ok.then(|| text.to_owned())
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The generic problem for an error response nobody described (the router's, actix's own).
fn generic_parts(status: actix_web::http::StatusCode) -> ProblemParts {
    let err = match status.as_u16() {
        404 => ApiError::NoRoute,
        405 => ApiError::MethodNotAllowed(Vec::new()),
        _ => ApiError::Internal(String::new()),
    };
    let mut parts = err.parts();
    parts.status = status;
    if !matches!(status.as_u16(), 404 | 405 | 500) {
        parts.detail = "The request cannot be served.".into();
    }
    parts
}

struct Quota {
    remaining: u64,
    reset: u64,
    limit: u64,
    window: u64,
}

async fn rate_limit(stack: &Stack, req: &ServiceRequest) -> Result<Option<Quota>, ApiError> {
    let settings = &stack.settings;
    if settings.rate_limit == 0 || !req.path().starts_with("/examples/") {
        return Ok(None);
    }
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req.headers().contains_key("access-control-request-method");
    if preflight && !settings.cors_origins.is_empty() {
        return Ok(None);
    }
    let client = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let window = settings.rate_window_seconds;
    let (index, reset) = ratelimit::window_position(epoch_seconds(), window);
    let key = ratelimit::key(&client, index);
    let count = match stack.redis.rate_limit_hit(&key, window + 1).await {
        Ok(count) => count,
        Err(err) => {
            tracing::warn!(error = %err, "rate limit not checked: the limiter failed");
            return Ok(None);
        }
    };
    let decision = ratelimit::decide(count, settings.rate_limit, window, reset);
    if !decision.allowed {
        return Err(ApiError::RateLimited {
            reset_seconds: decision.reset_seconds,
            limit: decision.limit,
            window_seconds: decision.window_seconds,
        });
    }
    Ok(Some(Quota {
        remaining: decision.remaining,
        reset: decision.reset_seconds,
        limit: decision.limit,
        window,
    }))
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = sane_request_id(req.headers().get(REQUEST_ID))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let stack = req.app_data::<web::Data<Stack>>().cloned();
    let route = req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned());
    if let Some(stack) = &stack {
        stack
            .metrics
            .http_in_flight
            .with_label_values(&[&method, &route])
            .inc();
    }

    let mut quota = None;
    let limited = match &stack {
        Some(stack) => rate_limit(stack, &req).await,
        None => Ok(None),
    };
    let mut res: ServiceResponse<BoxBody> = match limited {
        Err(refusal) => req.into_response(refusal.error_response()),
        Ok(q) => {
            quota = q;
            next.call(req).await?.map_into_boxed_body()
        }
    };

    let status = res.status();
    let parts = res.response().extensions().get::<ProblemParts>().cloned();
    // A JSON answer with an error status is ours (the health report); anything else is not.
    let described = res.headers().get(CONTENT_TYPE).is_some_and(|ct| {
        ct.as_bytes().starts_with(b"application/problem+json")
            || ct.as_bytes().starts_with(b"application/json")
    });
    let parts = match parts {
        Some(parts) => Some(parts),
        None if status.as_u16() >= 400 && !described => Some(generic_parts(status)),
        None => None,
    };
    if let Some(parts) = parts {
        let body = problems::render(&parts, &path, &request_id);
        res = res.map_body(|head, _| {
            head.headers
                .insert(CONTENT_TYPE, problems::content_type_value());
            BoxBody::new(body)
        });
    }
    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID), value);
    }
    if let Some(q) = quota {
        if let Ok(v) =
            HeaderValue::from_str(&format!("\"default\";r={};t={}", q.remaining, q.reset))
        {
            headers.insert(HeaderName::from_static("ratelimit"), v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("\"default\";q={};w={}", q.limit, q.window)) {
            headers.insert(HeaderName::from_static("ratelimit-policy"), v);
        }
    }
    // One line per request, with its id (never a refused inbound id: only the one answered).
    let duration_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    if status.is_server_error() {
        tracing::warn!(request_id = %request_id, method = %method, path = %path, status = status.as_u16(), duration_ms, "request failed");
    } else {
        tracing::info!(request_id = %request_id, method = %method, path = %path, status = status.as_u16(), duration_ms, "request");
    }
    if let Some(stack) = &stack {
        let m = &stack.metrics;
        m.http_in_flight.with_label_values(&[&method, &route]).dec();
        let final_route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| UNMATCHED.to_owned());
        m.http_requests
            .with_label_values(&[&method, &final_route, status.as_str()])
            .inc();
        m.http_duration
            .with_label_values(&[&method, &final_route])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// Wraps each resource (after routing, where the request may be cloned): a panic in a handler
/// becomes a 500 problem document and the worker goes on serving.
pub async fn panic_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request = req.request().clone();
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
        Err(_) => {
            tracing::error!(path = %request.path(), "a handler panicked; answered 500");
            let err = ApiError::Internal("handler panicked".into());
            Ok(ServiceResponse::new(request, err.error_response()))
        }
    }
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(vec!["GET", "POST", "PUT", "DELETE"])
        .allowed_headers(vec![CONTENT_TYPE, HeaderName::from_static(REQUEST_ID)])
        .expose_headers(vec![
            HeaderName::from_static(REQUEST_ID),
            actix_web::http::header::LOCATION,
            actix_web::http::header::RETRY_AFTER,
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
        ])
        .max_age(600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin().send_wildcard()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// The application: every route of the contract, CORS when configured, the request middleware.
pub fn app(
    stack: web::Data<Stack>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let origins = stack.settings.cors_origins.clone();
    App::new()
        .app_data(stack)
        .configure(routes::configure)
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::NoRoute)
        }))
        .wrap(Condition::new(!origins.is_empty(), cors(&origins)))
        .wrap(from_fn(request_context))
}

pub const MALFORMED_DETAIL: &str = "The request is not valid HTTP/1.1.";

/// The answer to a request actix's HTTP/1 parser refuses before any handler or middleware
/// sees it (a malformed request line or header line, bytes that are not ASCII in the target, a
/// bad `Content-Length`): a 400 problem document with a new request id, `instance` `/`, and the
/// connection closed. Set through the hook of the patched actix-http (vendor/actix-http).
pub fn malformed_request() -> (actix_http::Response<()>, web::Bytes) {
    let request_id = uuid::Uuid::new_v4().to_string();
    let parts = ProblemParts {
        status: actix_web::http::StatusCode::BAD_REQUEST,
        detail: MALFORMED_DETAIL.into(),
        dependency: None,
        errors: None,
    };
    let body = problems::render(&parts, "/", &request_id);
    let mut res = actix_http::Response::with_body(actix_web::http::StatusCode::BAD_REQUEST, ());
    res.headers_mut()
        .insert(CONTENT_TYPE, problems::content_type_value());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    tracing::info!(request_id = %request_id, status = 400, "request refused by the HTTP parser");
    (res, web::Bytes::from(body))
}

/// Serve HTTP and HTTPS from this process until SIGTERM/SIGINT (graceful, a few seconds).
pub async fn serve(settings: Arc<Settings>, stack: Arc<Stack>) -> std::io::Result<()> {
    actix_http::h1::set_malformed_request_answer(malformed_request);
    let data = web::Data::from(stack);
    let host = settings.api_host.clone();
    let mut server = HttpServer::new(move || app(data.clone()))
        .workers(settings.workers)
        .shutdown_timeout(3)
        .bind((host.as_str(), settings.http_port))?;
    if let (Some(cert), Some(key)) = (&settings.tls_cert_file, &settings.tls_key_file) {
        let config = crate::tls::server_config(cert, key)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        server = server.bind_rustls_0_23((host.as_str(), settings.https_port), config)?;
    }
    tracing::info!(
        http_port = settings.http_port,
        https_port = settings.tls_cert_file.as_ref().map(|_| settings.https_port),
        "listening"
    );
    server.run().await
}
