//! The HTTP layer with fakes: the real routes and middleware (`http::app`), a secret source
//! that answers from memory, and dependencies on ports where nothing listens. Everything here
//! is decided before a dependency is reached (request ids, routing, the body gate, validation,
//! problem documents), or is an outage (503 with Retry-After).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::to_bytes;
use actix_web::middleware::from_fn;
use actix_web::{test, web, App, HttpResponse};
use serde_json::{json, Value};

use devstack_rust::config::Settings;
use devstack_rust::http::{app, panic_guard, request_context};
use devstack_rust::masking::Redactor;
use devstack_rust::metrics::Metrics;
use devstack_rust::secrets::source::{Fetch, FetchFuture};
use devstack_rust::secrets::SecretStore;
use devstack_rust::state::Stack;
use devstack_rust::tls::Trust;
use devstack_rust::vault::{KvSecret, Vault};

struct FakeSecrets;

impl Fetch for FakeSecrets {
    fn fetch<'a>(&'a self, path: &'a str) -> FetchFuture<'a> {
        Box::pin(async move {
            let mut data = serde_json::Map::new();
            data.insert("user".into(), json!("app"));
            data.insert("password".into(), json!("not-a-real-password"));
            data.insert("database".into(), json!("app"));
            data.insert("tls_enabled".into(), json!(false));
            Ok(Some(KvSecret {
                path: path.to_owned(),
                data,
                version: 1,
            }))
        })
    }
}

fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port.to_string()
}

fn stack() -> Stack {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let closed = closed_port();
    let mut env: HashMap<String, String> = HashMap::new();
    for (k, v) in [
        ("DEVSTACK_VAULT_ROLE_ID", "role"),
        ("DEVSTACK_VAULT_SECRET_ID", "secret"),
        ("DEVSTACK_VAULT_ADDR", "http://127.0.0.1:9"),
        ("DEVSTACK_CONNECT_TIMEOUT", "1"),
        ("DEVSTACK_OPERATION_TIMEOUT", "3"),
        ("DEVSTACK_HEALTH_TIMEOUT", "2"),
    ] {
        env.insert(k.into(), v.into());
    }
    for dep in ["POSTGRES", "MYSQL", "MONGODB", "REDIS", "RABBITMQ"] {
        env.insert(format!("DEVSTACK_{dep}_PORT"), closed.clone());
    }
    let settings = Arc::new(
        Settings::from_lookup(&move |name: &str| env.get(name).cloned()).expect("settings"),
    );
    let metrics = Metrics::new();
    let vault = Arc::new(
        Vault::new(settings.clone(), Redactor::default(), metrics.clone()).expect("vault"),
    );
    let secrets = Arc::new(SecretStore::new(
        Arc::new(FakeSecrets),
        Duration::from_secs(300),
        metrics.clone(),
    ));
    // The checkout the test runs in, read when it runs (cargo sets it): the compiled test may
    // come from the shared target folder, built in another checkout that env! would name.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let trust = Trust::load(&root.join("tests/fixtures/ca.pem")).expect("test CA");
    Stack::assemble(settings, vault, secrets, trust, metrics)
}

async fn call(req: test::TestRequest) -> (u16, HashMap<String, String>, Value) {
    let service = test::init_service(app(web::Data::new(stack()))).await;
    let response = test::call_service(&service, req.to_request()).await;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let bytes = to_bytes(response.into_body()).await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn assert_problem(status: u16, headers: &HashMap<String, String>, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["status"], expected);
    assert_eq!(
        body["request_id"].as_str(),
        Some(headers["x-request-id"].as_str())
    );
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(body.get("errors").is_some(), expected == 422, "{body}");
    assert_eq!(
        body.get("dependency").is_some(),
        matches!(expected, 503 | 504),
        "{body}"
    );
}

fn is_uuid4(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|u| u.get_version_num() == 4)
        && text == text.to_lowercase()
}

#[actix_web::test]
async fn service_info_names_rust() {
    let (status, headers, body) = call(test::TestRequest::get().uri("/")).await;
    assert_eq!(status, 200);
    assert_eq!(body["implementation"], "rust");
    assert_eq!(body["version"], "1.0.0");
    assert!(is_uuid4(&headers["x-request-id"]));
}

#[actix_web::test]
async fn request_ids_are_kept_when_sane_and_replaced_otherwise() {
    let sane = "a.b_c:d+e/f=g-h";
    let (_, headers, _) = call(
        test::TestRequest::get()
            .uri("/health")
            .insert_header(("X-Request-ID", sane)),
    )
    .await;
    assert_eq!(headers["x-request-id"], sane);
    for insane in ["has space", &"x".repeat(129), "semi;colon", ""] {
        let (status, headers, body) = call(
            test::TestRequest::get()
                .uri("/nope")
                .insert_header(("X-Request-ID", insane)),
        )
        .await;
        assert_problem(status, &headers, &body, 404);
        assert!(is_uuid4(&headers["x-request-id"]), "{insane:?} was kept");
    }
}

#[actix_web::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let (status, headers, body) = call(test::TestRequest::get().uri("/examples/nope")).await;
    assert_problem(status, &headers, &body, 404);
    assert_eq!(body["instance"], "/examples/nope");
    let (status, headers, body) =
        call(test::TestRequest::patch().uri("/examples/postgres/items")).await;
    assert_problem(status, &headers, &body, 405);
    assert_eq!(headers["allow"], "GET, HEAD, POST");
    let (_, headers, _) = call(test::TestRequest::delete().uri("/")).await;
    assert_eq!(headers["allow"], "GET, HEAD");
    let (_, headers, _) = call(test::TestRequest::post().uri("/examples/cache/k")).await;
    assert_eq!(headers["allow"], "DELETE, GET, HEAD, PUT");
}

#[actix_web::test]
async fn bodies_are_checked_size_then_media_type_then_syntax_then_schema() {
    let items = "/examples/mysql/items";
    let big = vec![b'a'; 1_048_577];
    let cases: Vec<(Option<&str>, Vec<u8>, u16)> = vec![
        (Some("application/json"), big.clone(), 413),
        (Some("text/plain"), big, 413),
        (Some("text/plain"), b"{\"name\":\"n\"}".to_vec(), 415),
        (None, b"{\"name\":\"n\"}".to_vec(), 415),
        (Some("text/plain"), b"{not json".to_vec(), 415),
        (Some("application/json"), b"{\"name\": ".to_vec(), 400),
        (Some("application/json"), b"".to_vec(), 400),
        (Some("application/json"), b"[]".to_vec(), 422),
        (Some("application/json; charset=utf-8"), b"{}".to_vec(), 422),
        (
            Some("application/json"),
            b"{\"name\":\"n\",\"quantity\":2147483648}".to_vec(),
            422,
        ),
    ];
    for (content_type, body, expected) in cases {
        let mut req = test::TestRequest::post().uri(items).set_payload(body);
        if let Some(ct) = content_type {
            req = req.insert_header(("content-type", ct));
        }
        let (status, headers, problem) = call(req).await;
        assert_problem(status, &headers, &problem, expected);
    }
    let (_, _, problem) = call(
        test::TestRequest::post()
            .uri(items)
            .set_json(json!({"colour": "red"})),
    )
    .await;
    let mut fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    fields.sort();
    assert_eq!(fields, ["/colour", "/name"]);
}

#[actix_web::test]
async fn parameters_are_validated_before_any_dependency() {
    for (uri, field) in [
        ("/examples/cache/a*b", "key"),
        ("/examples/cache/bad%20key", "key"),
        ("/examples/messaging/queues/amq.x", "queue"),
        ("/examples/postgres/items?limit=0", "limit"),
        ("/examples/mongodb/items?limit=ten", "limit"),
        ("/examples/messaging/queues/q/messages?max=101", "max"),
    ] {
        let (status, headers, body) = call(test::TestRequest::get().uri(uri)).await;
        assert_problem(status, &headers, &body, 422);
        assert_eq!(body["errors"][0]["field"], field, "{uri}");
    }
    let (status, headers, body) =
        call(test::TestRequest::get().uri("/examples/cache/bad%20key")).await;
    assert_problem(status, &headers, &body, 422);
    assert_eq!(body["instance"], "/examples/cache/bad%20key");
    for uri in [
        "/health/nope",
        "/health/Postgres",
        "/examples/vault/secret/admin",
        "/examples/postgres/items/parity-missing",
        "/examples/mongodb/items/not-an-object-id",
    ] {
        let (status, headers, body) = call(test::TestRequest::get().uri(uri)).await;
        assert_problem(status, &headers, &body, 404);
    }
}

#[actix_web::test]
async fn a_dependency_down_is_503_with_retry_after_never_500() {
    for uri in [
        "/examples/postgres/query",
        "/examples/mysql/items",
        "/examples/redis/cluster/info",
        "/examples/cache/some-key",
    ] {
        let (status, headers, body) = call(test::TestRequest::get().uri(uri)).await;
        assert_problem(status, &headers, &body, 503);
        assert!(headers["retry-after"].parse::<u32>().is_ok_and(|s| s >= 1));
        assert!(!body.to_string().contains("not-a-real-password"));
    }
    let (status, headers, body) = call(test::TestRequest::get().uri("/health/postgres")).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["postgres"]["error"], "unavailable");
}

#[actix_web::test]
async fn secrets_are_masked() {
    let (status, _, body) =
        call(test::TestRequest::get().uri("/examples/vault/secret/postgres")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["password"], "********");
    assert_eq!(body["data"]["user"], "app");
    assert_eq!(body["data"]["tls_enabled"], "false");
    assert_eq!(body["masked_keys"], json!(["password"]));
    let (_, _, body) =
        call(test::TestRequest::get().uri("/examples/vault/secret/postgres/password")).await;
    assert_eq!(
        body,
        json!({"service": "postgres", "key": "password", "value": "********", "masked": true})
    );
}

#[actix_web::test]
async fn metrics_are_labelled_by_route_template() {
    let service = test::init_service(app(web::Data::new(stack()))).await;
    let probe = test::TestRequest::get()
        .uri("/examples/cache/a*b")
        .to_request();
    let _ = test::call_service(&service, probe).await;
    let response = test::call_service(
        &service,
        test::TestRequest::get().uri("/metrics").to_request(),
    )
    .await;
    assert!(response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain; version=0.0.4")));
    let text = String::from_utf8(
        to_bytes(response.into_body())
            .await
            .unwrap_or_default()
            .to_vec(),
    )
    .expect("utf-8");
    assert!(text.contains("route=\"/examples/cache/{key}\""), "{text}");
    assert!(!text.contains("a*b"));
}

#[actix_web::test]
async fn a_panicking_handler_is_a_500_and_the_worker_keeps_serving() {
    let service = test::init_service(
        App::new()
            .wrap(from_fn(request_context))
            .service(
                web::resource("/boom")
                    .route(web::get().to(|| async {
                        if std::env::var("NEVER_SET_IN_TESTS").is_err() {
                            panic!("a bug in a handler");
                        }
                        HttpResponse::Ok().finish()
                    }))
                    .wrap(from_fn(panic_guard)),
            )
            .route(
                "/fine",
                web::get().to(|| async { HttpResponse::Ok().finish() }),
            ),
    )
    .await;
    for _ in 0..3 {
        let response =
            test::call_service(&service, test::TestRequest::get().uri("/boom").to_request()).await;
        assert_eq!(response.status().as_u16(), 500);
        let body: Value =
            serde_json::from_slice(&to_bytes(response.into_body()).await.unwrap_or_default())
                .expect("problem");
        assert_eq!(body["title"], "Internal Server Error");
        assert!(!body.to_string().contains("a bug in a handler"));
        let fine =
            test::call_service(&service, test::TestRequest::get().uri("/fine").to_request()).await;
        assert_eq!(fine.status().as_u16(), 200);
    }
}

/// What a raw HTTP/1.1 exchange answered, the connection read until the server closed it.
fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_web::test]
async fn a_request_the_http_parser_refuses_is_a_problem_document() {
    actix_http::h1::set_malformed_request_answer(devstack_rust::http::malformed_request);
    let server = actix_web::HttpServer::new(|| App::new().wrap(from_fn(request_context)))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind");
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    for request in [
        b"GARBAGE\r\n\r\n".as_slice(),
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ] {
        let answer = actix_web::rt::task::spawn_blocking(move || raw_exchange(addr, request))
            .await
            .expect("exchange");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        let mut lines = head.split("\r\n");
        assert!(
            lines.next().unwrap_or("").starts_with("HTTP/1.1 400"),
            "{answer}"
        );
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_lowercase(), v.to_owned()))
            .collect();
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(headers["connection"], "close");
        let problem: Value = serde_json::from_str(body).expect("json");
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["instance"], "/");
        assert_eq!(problem["detail"], "The request is not valid HTTP/1.1.");
        assert_eq!(problem["request_id"], headers["x-request-id"].as_str());
        assert!(is_uuid4(&headers["x-request-id"]));
    }
}
