//! Every operation of openapi/devstack.yaml. Each handler is a thin adapter: read and check the
//! input (413, 415, 400, then 422 for parameters and body together), call one store, answer
//! the contract's shape. Errors are [`ApiError`]s, answered as problem documents.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{LOCATION, RETRY_AFTER};
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::http::panic_guard;
use serde_json::{json, Map, Value};

use crate::config::DEPENDENCIES;
use crate::health;
use crate::input;
use crate::masking::{is_masked_key, MASK};
use crate::metrics::TEXT_FORMAT;
use crate::problems::{ApiError, Dependency, FieldError};
use crate::secrets::SecretError;
use crate::state::Stack;
use crate::stores::rabbit::Settle;
use crate::stores::Backend;
use crate::vault::VaultError;

pub const IMPLEMENTATION: &str = "rust";
pub const CONTRACT_VERSION: &str = "1.0.0";
const HEALTH_RETRY_AFTER_SECONDS: u32 = 5;

type Data = web::Data<Stack>;
type Answer = Result<HttpResponse, ApiError>;

fn invalid(errors: Vec<FieldError>) -> ApiError {
    ApiError::Invalid(errors)
}

/// Path parameter (decoded) by name.
fn param(req: &HttpRequest, name: &str) -> String {
    req.match_info()
        .get(name)
        .map(percent_decode)
        .unwrap_or_default()
}

fn percent_decode(raw: &str) -> String {
    crate::problems::percent_decode(raw)
}

// -- service and health -----------------------------------------------------------------------

pub async fn service_info() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "devstack-core",
        "implementation": IMPLEMENTATION,
        "version": CONTRACT_VERSION,
        "links": {"self": "/", "health": "/health", "health_all": "/health/all", "metrics": "/metrics"},
    }))
}

pub async fn liveness() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "healthy"}))
}

fn health_response(report: &health::HealthReport) -> HttpResponse {
    if report.http_status() == 200 {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((RETRY_AFTER, HEALTH_RETRY_AFTER_SECONDS.to_string()))
            .json(report)
    }
}

pub async fn health_all(stack: Data) -> HttpResponse {
    health_response(&health::check(&stack, None).await)
}

pub async fn health_service(stack: Data, req: HttpRequest) -> Answer {
    let service = param(&req, "service");
    let dependency = Dependency::from_name(&service)
        .ok_or_else(|| ApiError::NotFound(format!("there is no dependency named '{service}'")))?;
    Ok(health_response(
        &health::check(&stack, Some(dependency)).await,
    ))
}

pub async fn metrics(stack: Data) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(TEXT_FORMAT)
        .body(stack.metrics.render())
}

// -- vault --------------------------------------------------------------------------------------

/// A value as the Python apps show it: a string as it is, anything else as `json.dumps` spells
/// it (`true`, `3`, `null`, `{"a": 1}`).
pub fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => python_json(other),
    }
}

fn python_json(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                        let mut units = [0u16; 2];
                        for unit in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    python_json(&Value::String(k.clone())),
                    python_json(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

async fn secret_view(stack: &Stack, service: &str) -> Result<Value, ApiError> {
    if !DEPENDENCIES.contains(&service) {
        return Err(ApiError::NotFound(format!("no secret for '{service}'")));
    }
    let secret = match stack.secrets.get(service).await {
        Ok(secret) => secret,
        Err(SecretError::Vault(VaultError::Status { status: 403, .. })) => {
            return Err(ApiError::NotFound(format!(
                "the secret of '{service}' is not readable"
            )))
        }
        Err(SecretError::Vault(err)) => return Err(err.into()),
        Err(SecretError::NotFound(_)) => {
            return Err(ApiError::NotFound(format!("no secret for '{service}'")))
        }
    };
    let mut data = Map::new();
    let mut masked_keys = Vec::new();
    for (key, value) in &secret.data {
        if is_masked_key(key) {
            data.insert(key.clone(), Value::String(MASK.into()));
            masked_keys.push(key.clone());
        } else {
            data.insert(key.clone(), Value::String(as_text(value)));
        }
    }
    masked_keys.sort();
    Ok(json!({
        "service": service,
        "path": format!("{}/{service}", stack.settings.kv_mount),
        "version": secret.version,
        "data": data,
        "masked_keys": masked_keys,
    }))
}

pub async fn vault_secret(stack: Data, req: HttpRequest) -> Answer {
    let view = secret_view(&stack, &param(&req, "service")).await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn vault_secret_key(stack: Data, req: HttpRequest) -> Answer {
    let service = param(&req, "service");
    let key = param(&req, "key");
    let view = secret_view(&stack, &service).await?;
    let value = view
        .get("data")
        .and_then(|d| d.get(&key))
        .cloned()
        .ok_or_else(|| {
            ApiError::NotFound(format!("the secret of '{service}' has no key '{key}'"))
        })?;
    Ok(HttpResponse::Ok().json(json!({
        "service": service,
        "key": key,
        "value": value,
        "masked": is_masked_key(&key),
    })))
}

// -- databases ----------------------------------------------------------------------------------

fn backend(req: &HttpRequest) -> Backend {
    match req.path().split('/').nth(2) {
        Some("mysql") => Backend::Mysql,
        Some("mongodb") => Backend::Mongodb,
        _ => Backend::Postgres,
    }
}

pub async fn db_query(stack: Data, req: HttpRequest) -> Answer {
    let result = match backend(&req) {
        Backend::Postgres => stack.postgres.query().await?,
        Backend::Mysql => stack.mysql.query().await?,
        Backend::Mongodb => stack.mongo.query().await?,
    };
    Ok(HttpResponse::Ok().json(result))
}

pub async fn db_list(stack: Data, req: HttpRequest) -> Answer {
    let limit = input::bounded_int(&req, "limit", 20, 100).map_err(|e| invalid(vec![e]))?;
    let list = match backend(&req) {
        Backend::Postgres => stack.postgres.list(limit).await?,
        Backend::Mysql => stack.mysql.list(limit).await?,
        Backend::Mongodb => stack.mongo.list(limit).await?,
    };
    Ok(HttpResponse::Ok().json(list))
}

pub async fn db_create(stack: Data, req: HttpRequest, payload: web::Payload) -> Answer {
    let body = input::read_json(&req, payload, stack.settings.body_limit).await?;
    let (name, quantity) = input::item_create(&body).map_err(invalid)?;
    let db = backend(&req);
    let item = match db {
        Backend::Postgres => stack.postgres.create(&name, quantity).await?,
        Backend::Mysql => stack.mysql.create(&name, quantity).await?,
        Backend::Mongodb => stack.mongo.create(&name, quantity).await?,
    };
    Ok(HttpResponse::Created()
        .insert_header((
            LOCATION,
            format!("/examples/{}/items/{}", db.name(), item.id),
        ))
        .json(item))
}

pub async fn db_get(stack: Data, req: HttpRequest) -> Answer {
    let id = param(&req, "item_id");
    let item = match backend(&req) {
        Backend::Postgres => stack.postgres.get(&id).await?,
        Backend::Mysql => stack.mysql.get(&id).await?,
        Backend::Mongodb => stack.mongo.get(&id).await?,
    };
    Ok(HttpResponse::Ok().json(item))
}

pub async fn db_delete(stack: Data, req: HttpRequest) -> Answer {
    let id = param(&req, "item_id");
    match backend(&req) {
        Backend::Postgres => stack.postgres.delete(&id).await?,
        Backend::Mysql => stack.mysql.delete(&id).await?,
        Backend::Mongodb => stack.mongo.delete(&id).await?,
    }
    Ok(HttpResponse::NoContent().finish())
}

// -- cache ----------------------------------------------------------------------------------------

pub async fn cache_get(stack: Data, req: HttpRequest) -> Answer {
    let key = param(&req, "key");
    input::cache_key(&key).map_err(|e| invalid(vec![e]))?;
    Ok(HttpResponse::Ok().json(stack.redis.cache_get(&key).await?))
}

pub async fn cache_put(stack: Data, req: HttpRequest, payload: web::Payload) -> Answer {
    let key = param(&req, "key");
    let body = input::read_json(&req, payload, stack.settings.body_limit).await?;
    let mut errors = Vec::new();
    if let Err(e) = input::cache_key(&key) {
        errors.push(e);
    }
    let write = input::cache_write(&body);
    let (value, ttl) = match write {
        Ok(ok) if errors.is_empty() => ok,
        Ok(_) => return Err(invalid(errors)),
        Err(body_errors) => {
            errors.extend(body_errors);
            return Err(invalid(errors));
        }
    };
    let (entry, created) = stack.redis.cache_put(&key, &value, ttl).await?;
    let mut response = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(entry))
}

pub async fn cache_delete(stack: Data, req: HttpRequest) -> Answer {
    let key = param(&req, "key");
    input::cache_key(&key).map_err(|e| invalid(vec![e]))?;
    stack.redis.cache_delete(&key).await?;
    Ok(HttpResponse::NoContent().finish())
}

// -- messaging ----------------------------------------------------------------------------------

pub async fn queue_info(stack: Data, req: HttpRequest) -> Answer {
    let queue = param(&req, "queue");
    input::queue_name(&queue).map_err(|e| invalid(vec![e]))?;
    Ok(HttpResponse::Ok().json(stack.rabbit.inspect(&queue).await?))
}

pub async fn queue_publish(stack: Data, req: HttpRequest, payload: web::Payload) -> Answer {
    let queue = param(&req, "queue");
    let body = input::read_json(&req, payload, stack.settings.body_limit).await?;
    let mut errors = Vec::new();
    if let Err(e) = input::queue_name(&queue) {
        errors.push(e);
    }
    if let Err(body_errors) = input::json_object(&body) {
        errors.extend(body_errors);
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok(HttpResponse::Accepted().json(stack.rabbit.publish(&queue, &body).await?))
}

pub async fn queue_consume(stack: Data, req: HttpRequest) -> Answer {
    let queue = param(&req, "queue");
    let mut errors = Vec::new();
    if let Err(e) = input::queue_name(&queue) {
        errors.push(e);
    }
    let max = input::bounded_int(&req, "max", 10, 100);
    let max = match max {
        Ok(m) if errors.is_empty() => m,
        Ok(_) => return Err(invalid(errors)),
        Err(e) => {
            errors.push(e);
            return Err(invalid(errors));
        }
    };
    let max = u32::try_from(max).unwrap_or(10);
    let taken = stack.rabbit.consume(&queue, max).await?;
    let body = match serde_json::to_vec(&taken.result) {
        Ok(body) => body,
        Err(_) => {
            if let Some(settle) = taken.settle {
                settle.release();
            }
            return Err(ApiError::Internal(
                "the consumed messages cannot be encoded".into(),
            ));
        }
    };
    let mut response = HttpResponse::Ok();
    response.content_type("application/json");
    match taken.settle {
        // HEAD answers without the body: the messages were not given to anyone.
        Some(settle) if req.method() == actix_web::http::Method::HEAD => {
            settle.release();
            Ok(response.body(body))
        }
        Some(settle) => Ok(response.body(AckOnSent::new(body, settle))),
        None => Ok(response.body(body)),
    }
}

/// A consume's answer: its messages are acknowledged once the last byte of the body was handed
/// to the connection; a body dropped before that (the client went away) leaves them to be
/// redelivered (see [`Settle`]).
struct AckOnSent {
    body: Option<web::Bytes>,
    size: u64,
    settle: Option<Settle>,
}

impl AckOnSent {
    fn new(body: Vec<u8>, settle: Settle) -> Self {
        AckOnSent {
            size: body.len() as u64,
            body: Some(web::Bytes::from(body)),
            settle: Some(settle),
        }
    }
}

impl MessageBody for AckOnSent {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.body.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        // Asked again: the whole body is in the connection's write buffer.
        if let Some(settle) = this.settle.take() {
            settle.sent();
        }
        Poll::Ready(None)
    }
}

// -- the Redis cluster ----------------------------------------------------------------------------

pub async fn redis_nodes(stack: Data) -> Answer {
    Ok(HttpResponse::Ok().json(json!({"nodes": stack.redis.nodes().await?})))
}

pub async fn redis_slots(stack: Data) -> Answer {
    Ok(HttpResponse::Ok().json(stack.redis.slots().await?))
}

pub async fn redis_info(stack: Data) -> Answer {
    Ok(HttpResponse::Ok().json(stack.redis.info().await?))
}

pub async fn redis_node_info(stack: Data, req: HttpRequest) -> Answer {
    let node = param(&req, "node");
    Ok(HttpResponse::Ok().json(stack.redis.node_info(&node).await?))
}

// -- the route table ------------------------------------------------------------------------------

/// A 405 for a path that exists, naming the methods it has (HEAD with GET, as Starlette does).
fn not_allowed(methods: &'static [&'static str]) -> actix_web::Route {
    web::to(
        move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(methods.to_vec())) },
    )
}

macro_rules! get {
    ($handler:expr) => {
        web::route()
            .guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
            .to($handler)
    };
}

/// Every operation of the contract; anything else is a 404 (the app's default service).
pub fn configure(cfg: &mut web::ServiceConfig) {
    const GET: &[&str] = &["GET", "HEAD"];
    const GET_POST: &[&str] = &["GET", "HEAD", "POST"];
    const GET_DELETE: &[&str] = &["DELETE", "GET", "HEAD"];
    const CACHE: &[&str] = &["DELETE", "GET", "HEAD", "PUT"];
    let read = |path: &str, handler: actix_web::Route| {
        web::resource(path)
            .route(handler)
            .default_service(not_allowed(GET))
            .wrap(from_fn(panic_guard))
    };
    cfg.service(read("/", get!(service_info)))
        .service(read("/health", get!(liveness)))
        .service(read("/health/all", get!(health_all)))
        .service(read("/health/{service}", get!(health_service)))
        .service(read("/metrics", get!(metrics)))
        .service(read("/examples/vault/secret/{service}", get!(vault_secret)))
        .service(read(
            "/examples/vault/secret/{service}/{key}",
            get!(vault_secret_key),
        ));
    for db in ["postgres", "mysql", "mongodb"] {
        cfg.service(read(&format!("/examples/{db}/query"), get!(db_query)))
            .service(
                web::resource(format!("/examples/{db}/items"))
                    .route(get!(db_list))
                    .route(web::post().to(db_create))
                    .default_service(not_allowed(GET_POST))
                    .wrap(from_fn(panic_guard)),
            )
            .service(
                web::resource(format!("/examples/{db}/items/{{item_id}}"))
                    .route(get!(db_get))
                    .route(web::delete().to(db_delete))
                    .default_service(not_allowed(GET_DELETE))
                    .wrap(from_fn(panic_guard)),
            );
    }
    cfg.service(
        web::resource("/examples/cache/{key}")
            .route(get!(cache_get))
            .route(web::put().to(cache_put))
            .route(web::delete().to(cache_delete))
            .default_service(not_allowed(CACHE))
            .wrap(from_fn(panic_guard)),
    )
    .service(read("/examples/messaging/queues/{queue}", get!(queue_info)))
    .service(
        web::resource("/examples/messaging/queues/{queue}/messages")
            .route(get!(queue_consume))
            .route(web::post().to(queue_publish))
            .default_service(not_allowed(GET_POST))
            .wrap(from_fn(panic_guard)),
    )
    .service(read("/examples/redis/cluster/nodes", get!(redis_nodes)))
    .service(read("/examples/redis/cluster/slots", get!(redis_slots)))
    .service(read("/examples/redis/cluster/info", get!(redis_info)))
    .service(read(
        "/examples/redis/nodes/{node}/info",
        get!(redis_node_info),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shown_as_python_shows_them() {
        assert_eq!(as_text(&json!("plain")), "plain");
        assert_eq!(as_text(&json!(true)), "true");
        assert_eq!(as_text(&json!(3)), "3");
        assert_eq!(as_text(&json!(null)), "null");
        assert_eq!(
            as_text(&json!({"a": [1, "é"]})),
            "{\"a\": [1, \"\\u00e9\"]}"
        );
    }

    #[test]
    fn path_parameters_are_decoded() {
        assert_eq!(percent_decode("bad%20key"), "bad key");
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
