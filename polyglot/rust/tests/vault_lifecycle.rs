//! The token lifecycle against a fake Vault (a local HTTP server speaking the few endpoints the
//! client uses): login, renewal, a new login when renewal is capped, a refused token replaced
//! once however many requests find it refused, a genuine permission error left alone, and a
//! refused AppRole failing the start at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;

use devstack_rust::config::Settings;
use devstack_rust::masking::Redactor;
use devstack_rust::metrics::Metrics;
use devstack_rust::vault::{Action, Vault, VaultError, VaultProbe};

#[derive(Default)]
struct Fake {
    token: String,
    logins: u32,
    renewals: u32,
    /// Renewals granted in full before the max TTL caps them.
    full_renewals: u32,
    ttl: u64,
    sealed: bool,
    health_calls: u32,
    /// A read of `after-a-new-login` has arrived and waits for the client's next login.
    read_waiting: bool,
}

type Shared = web::Data<Mutex<Fake>>;

fn token_of(req: &HttpRequest) -> String {
    req.headers()
        .get("X-Vault-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn login(state: Shared, body: web::Json<serde_json::Value>) -> HttpResponse {
    if body["secret_id"] != "good-secret-id" {
        return HttpResponse::BadRequest().json(json!({"errors": ["invalid secret id"]}));
    }
    let mut s = state.lock().expect("state");
    s.logins += 1;
    s.token = format!("hvs.fake-token-number-{:04}-abcdefghij", s.logins);
    HttpResponse::Ok().json(json!({"auth": {
        "client_token": s.token, "lease_duration": s.ttl, "renewable": true}}))
}

async fn renew(state: Shared, req: HttpRequest) -> HttpResponse {
    let mut s = state.lock().expect("state");
    if token_of(&req) != s.token {
        return HttpResponse::Forbidden().json(json!({"errors": ["permission denied"]}));
    }
    s.renewals += 1;
    let granted = if s.renewals <= s.full_renewals {
        s.ttl
    } else {
        1
    };
    HttpResponse::Ok().json(json!({"auth": {
        "client_token": s.token, "lease_duration": granted, "renewable": true}}))
}

async fn lookup(state: Shared, req: HttpRequest) -> HttpResponse {
    let s = state.lock().expect("state");
    if token_of(&req) != s.token {
        return HttpResponse::Forbidden().json(json!({"errors": ["permission denied"]}));
    }
    HttpResponse::Ok().json(json!({"data": {"ttl": s.ttl, "policies": ["default"]}}))
}

async fn kv(state: Shared, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    if path.as_str() == "after-a-new-login" && !state.lock().expect("state").read_waiting {
        // The first read is answered once the client has logged in again: the token it was sent
        // with is refused then.
        let logins = state.lock().expect("state").logins;
        state.lock().expect("state").read_waiting = true;
        while state.lock().expect("state").logins == logins {
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let s = state.lock().expect("state");
    if token_of(&req) != s.token || path.as_str() == "forbidden" {
        return HttpResponse::Forbidden().json(json!({"errors": ["permission denied"]}));
    }
    HttpResponse::Ok().json(json!({"data": {
        "data": {"user": "app", "password": "fake-password-123"},
        "metadata": {"version": 7}}}))
}

async fn sys_health(state: Shared, req: HttpRequest) -> HttpResponse {
    let mut s = state.lock().expect("state");
    s.health_calls += 1;
    if !token_of(&req).is_empty() || !req.query_string().contains("standbyok=true") {
        return HttpResponse::BadRequest().finish();
    }
    if s.sealed {
        return HttpResponse::ServiceUnavailable().json(json!({"sealed": true}));
    }
    HttpResponse::Ok().json(json!({"initialized": true, "sealed": false}))
}

fn fake_vault(ttl: u64, full_renewals: u32) -> (std::net::SocketAddr, Shared) {
    let state: Shared = web::Data::new(Mutex::new(Fake {
        ttl,
        full_renewals,
        ..Default::default()
    }));
    let shared = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .route("/v1/auth/approle/login", web::post().to(login))
            .route("/v1/auth/token/renew-self", web::post().to(renew))
            .route("/v1/auth/token/lookup-self", web::get().to(lookup))
            .route("/v1/secret/data/{path}", web::get().to(kv))
            .route("/v1/sys/health", web::get().to(sys_health))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    (addr, state)
}

fn client(addr: std::net::SocketAddr, secret_id: &str) -> Arc<Vault> {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("DEVSTACK_VAULT_ADDR".into(), format!("http://{addr}"));
    env.insert("DEVSTACK_VAULT_ROLE_ID".into(), "role".into());
    env.insert("DEVSTACK_VAULT_SECRET_ID".into(), secret_id.into());
    env.insert("DEVSTACK_VAULT_START_TIMEOUT".into(), "2".into());
    env.insert("DEVSTACK_BACKOFF_INITIAL".into(), "0.05".into());
    env.insert("DEVSTACK_BACKOFF_MAX".into(), "0.2".into());
    let settings = Arc::new(
        Settings::from_lookup(&move |name: &str| env.get(name).cloned()).expect("settings"),
    );
    Arc::new(Vault::new(settings, Redactor::default(), Metrics::new()).expect("client"))
}

#[actix_web::test]
async fn renews_then_logs_in_again_when_renewal_is_capped() {
    let (server, state) = fake_vault(2, 2);
    let vault = client(server, "good-secret-id");
    vault.start().await.expect("login");
    let keeper = tokio::spawn(vault.clone().keep_alive());
    // Two full renewals, then a capped one (1 s for a 2 s token): the client logs in again.
    // The client's own count: the fake server counts a login before the client has its answer.
    for _ in 0..200 {
        if vault.login_count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(vault
            .kv_read("postgres")
            .await
            .expect("never a failed read")
            .is_some());
    }
    keeper.abort();
    let s = state.lock().expect("state");
    assert!(s.renewals >= 3, "renewed {} times", s.renewals);
    assert!(s.logins >= 2, "logged in {} times", s.logins);
    // Every login the client counted reached Vault; at most one more was in flight at the abort.
    let counted = vault.login_count();
    let seen = u64::from(s.logins);
    assert!(
        counted >= 2 && (counted..=counted + 1).contains(&seen),
        "{counted} vs {seen}"
    );
}

#[actix_web::test]
async fn a_refused_token_is_replaced_once_for_many_requests() {
    let (server, state) = fake_vault(3600, 100);
    let vault = client(server, "good-secret-id");
    vault.start().await.expect("login");
    state.lock().expect("state").token = "hvs.revoked-by-an-operator".into();
    let reads: Vec<_> = (0..10)
        .map(|_| {
            let v = vault.clone();
            tokio::spawn(async move { v.kv_read("postgres").await.map(|s| s.map(|x| x.version)) })
        })
        .collect();
    for read in reads {
        assert_eq!(
            read.await.expect("joined").expect("read after re-login"),
            Some(7)
        );
    }
    assert_eq!(
        state.lock().expect("state").logins,
        2,
        "one login for ten refused reads"
    );
    // A genuine permission error (the token is fine) causes no login.
    let denied = vault.kv_read("forbidden").await;
    assert!(matches!(
        denied,
        Err(VaultError::Status { status: 403, .. })
    ));
    assert_eq!(state.lock().expect("state").logins, 2);
}

#[actix_web::test]
async fn a_refused_approle_stops_the_start_at_once() {
    let (server, state) = fake_vault(3600, 100);
    let vault = client(server, "wrong-secret-id");
    let err = vault.start().await.expect_err("refused");
    assert_eq!(err.status(), Some(400));
    assert_eq!(state.lock().expect("state").logins, 0);
    assert!(vault.status().reachable);
}

#[actix_web::test]
async fn an_unreachable_vault_is_reported_not_hidden() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let vault = client(addr, "good-secret-id");
    assert!(vault.start().await.is_err());
    let status = vault.status();
    assert!(!status.reachable);
    assert!(!status.authenticated);
}

#[actix_web::test]
async fn the_health_probe_asks_vault_each_time_without_a_token() {
    let (addr, state) = fake_vault(60, 100);
    let vault = client(addr, "good-secret-id");
    vault.start().await.expect("login");
    assert_eq!(vault.probe().await, VaultProbe::Up);
    assert_eq!(vault.probe().await, VaultProbe::Up);
    assert_eq!(state.lock().expect("state").health_calls, 2);
    state.lock().expect("state").sealed = true;
    assert_eq!(vault.probe().await, VaultProbe::NotReady);
    // Nothing listens on port 9 (discard): refused at once.
    let gone = client("127.0.0.1:9".parse().expect("addr"), "good-secret-id");
    assert_eq!(gone.probe().await, VaultProbe::Unreachable);
}

#[actix_web::test]
async fn a_refusal_of_a_token_replaced_in_flight_is_asked_again() {
    // The keeper's login replaced the token while a read was in flight with the old one: the read
    // is asked again with the new token, not failed (a lookup of the new token says it is fine).
    let (server, state) = fake_vault(3600, 100);
    let vault = client(server, "good-secret-id");
    vault.start().await.expect("login");
    let reader = {
        let vault = vault.clone();
        actix_web::rt::spawn(async move { vault.kv_read("after-a-new-login").await })
    };
    for _ in 0..1000 {
        if state.lock().expect("state").read_waiting {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        state.lock().expect("state").read_waiting,
        "the read never arrived"
    );
    vault
        .refresh(Action::Login, vault.generation())
        .await
        .expect("login");
    let read = reader.await.expect("the reader");
    assert!(
        read.expect("asked again with the new token").is_some(),
        "the secret was read"
    );
}
