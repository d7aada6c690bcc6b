//! The Mongo-protocol server (FerretDB here) through the official mongodb driver, TLS verified
//! against the stack's CA.

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime as BsonDateTime, Document};
use mongodb::options::{ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
use mongodb::{Client, Collection, Database};

use super::{
    bounded, check_limit, from_micros, iso, now_millis, Context, Item, ItemList, Managed,
    QueryResult,
};
use crate::problems::{ApiError, Dependency};
use crate::vault::KvSecret;

const DEP: Dependency = Dependency::Mongodb;

pub struct Handle {
    client: Client,
    database: Database,
}

pub struct Mongo {
    ctx: Context,
    managed: Managed<Handle>,
    /// Set by a failure that says the server is gone (refused, reset, the driver's server
    /// selection failing); cleared by the next success. While set, every operation and probe
    /// first opens a TCP connection to the server, so a stopped server is a 503 at once.
    down: AtomicBool,
}

fn not_found() -> ApiError {
    ApiError::NotFound("no mongodb item has this id".into())
}

fn object_id(item_id: &str) -> Result<ObjectId, ApiError> {
    ObjectId::parse_str(item_id).map_err(|_| not_found())
}

fn int(value: Option<&Bson>) -> i64 {
    match value {
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Double(v)) => *v as i64,
        _ => 0,
    }
}

fn item(doc: &Document) -> Result<Item, ApiError> {
    let bad = || ApiError::unavailable(DEP, "unexpected document");
    let id = match doc.get("_id") {
        Some(Bson::ObjectId(oid)) => oid.to_hex(),
        Some(Bson::String(s)) => s.clone(),
        _ => return Err(bad()),
    };
    let created = match doc.get("created_at") {
        Some(Bson::DateTime(t)) => from_micros(t.timestamp_millis() * 1000),
        _ => return Err(bad()),
    };
    Ok(Item {
        id,
        name: doc.get_str("name").map_err(|_| bad())?.to_owned(),
        quantity: int(doc.get("quantity")),
        created_at: iso(&created),
    })
}

impl Mongo {
    pub fn new(ctx: Context) -> Self {
        Mongo {
            ctx,
            managed: Managed::new(DEP),
            down: AtomicBool::new(false),
        }
    }

    /// While down: a TCP connection to the server's port within the connect timeout, or a 503
    /// now (docs/api.md, "Dependency outages").
    async fn reachable(&self, what: &str) -> Result<(), ApiError> {
        let s = &self.ctx.settings;
        let (host, port) = s.endpoint("mongodb", true);
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        match tokio::time::timeout(s.connect_timeout, connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ApiError::unavailable(
                DEP,
                format!("{what}: the server refused the connection"),
            )),
            Err(_) => Err(ApiError::unavailable(
                DEP,
                format!("{what}: no connection within the connect timeout"),
            )),
        }
    }

    fn mark_down(&self) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(dependency = %DEP, "down: every operation checks the port first");
        }
    }

    fn build(&self, secret: &KvSecret) -> Result<Handle, ApiError> {
        let s = &self.ctx.settings;
        let (host, port) = s.endpoint("mongodb", true);
        let missing = |k: &str| ApiError::unavailable(DEP, format!("the secret has no {k}"));
        let database = secret.text("database").ok_or_else(|| missing("database"))?;
        let credential = Credential::builder()
            .username(
                secret
                    .text("user")
                    .ok_or_else(|| missing("user"))?
                    .to_owned(),
            )
            .password(
                secret
                    .secret("password")
                    .ok_or_else(|| missing("password"))?
                    .expose()
                    .to_owned(),
            )
            .source(database.to_owned())
            .build();
        let tls = if secret.tls_enabled() {
            Tls::Enabled(
                TlsOptions::builder()
                    .ca_file_path(self.ctx.trust.ca_file.clone())
                    .build(),
            )
        } else {
            Tls::Disabled
        };
        let options = ClientOptions::builder()
            .hosts(vec![ServerAddress::Tcp {
                host,
                port: Some(port),
            }])
            .credential(credential)
            .tls(tls)
            .direct_connection(true)
            .app_name("devstack_rust".to_owned())
            .connect_timeout(s.connect_timeout)
            .server_selection_timeout(s.connect_timeout)
            .max_pool_size(s.pool_max_size as u32)
            .min_pool_size(0u32)
            .build();
        let client = Client::with_options(options)
            .map_err(|_| ApiError::unavailable(DEP, "cannot build the client"))?;
        let database = client.database(database);
        Ok(Handle { client, database })
    }

    async fn handle(&self) -> Result<std::sync::Arc<Handle>, ApiError> {
        self.managed
            .client(
                &self.ctx.secrets,
                |secret| async move { self.build(&secret) },
            )
            .await
    }

    fn translate(&self, what: &str, err: &mongodb::error::Error) -> ApiError {
        let auth = match err.kind.as_ref() {
            mongodb::error::ErrorKind::Authentication { .. } => true,
            mongodb::error::ErrorKind::Command(c) => c.code == 18,
            _ => false,
        };
        if auth {
            self.managed.on_auth_error(&self.ctx.secrets);
            return ApiError::unavailable(DEP, format!("{what}: authentication failed: {err}"));
        }
        ApiError::unavailable(DEP, format!("{what}: {err}"))
    }

    async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, ApiError>
    where
        F: FnOnce(std::sync::Arc<Handle>) -> Fut,
        Fut: std::future::Future<Output = Result<T, mongodb::error::Error>>,
    {
        let timeout = self.ctx.settings.operation_timeout;
        let result = bounded(DEP, what, timeout, async {
            if self.down.load(Ordering::Relaxed) {
                self.reachable(what).await?;
            }
            let handle = self.handle().await?;
            op(handle).await.map_err(|e| self.translate(what, &e))
        })
        .await;
        match result {
            Ok(value) => {
                self.down.store(false, Ordering::Relaxed);
                Ok(value)
            }
            Err(
                err @ ApiError::Unavailable {
                    dependency: DEP, ..
                },
            ) => {
                self.mark_down();
                Err(err)
            }
            // A slow server is not a down one, unless its port refuses connections (the
            // driver's server selection was still waiting for a server that is gone).
            Err(err @ ApiError::Timeout { .. }) => match self.reachable(what).await {
                Ok(()) => Err(err),
                Err(refused) => {
                    self.mark_down();
                    Err(refused)
                }
            },
            Err(err) => Err(err),
        }
    }

    fn items(handle: &Handle) -> Collection<Document> {
        handle.database.collection("items")
    }

    /// A ping. Within the health timeout: when it is not answered in time and the port refuses
    /// connections, the server is down (`unavailable`), not slow.
    pub async fn health(&self) -> Result<(), ApiError> {
        let within = self.ctx.settings.health_timeout.mul_f64(0.8);
        let ping = self.run("health", |h| async move {
            h.database.run_command(doc! {"ping": 1}).await.map(|_| ())
        });
        match tokio::time::timeout(within, ping).await {
            Ok(result) => result,
            Err(_) => {
                self.reachable("health")
                    .await
                    .inspect_err(|_| self.mark_down())?;
                Err(ApiError::timeout(DEP, "health: no answer in time"))
            }
        }
    }

    pub async fn query(&self) -> Result<QueryResult, ApiError> {
        let (build, hello) = self
            .run("query", |h| async move {
                let build = h.database.run_command(doc! {"buildInfo": 1}).await?;
                let hello = h
                    .client
                    .database("admin")
                    .run_command(doc! {"hello": 1})
                    .await?;
                Ok((build, hello))
            })
            .await?;
        let version = match build.get("version") {
            Some(Bson::String(v)) => v.clone(),
            _ => String::new(),
        };
        let time = match hello.get("localTime") {
            Some(Bson::DateTime(t)) => from_micros(t.timestamp_millis() * 1000),
            _ => now_millis(),
        };
        Ok(QueryResult {
            database: "mongodb",
            server_version: version,
            server_time: iso(&time),
        })
    }

    pub async fn create(&self, name: &str, quantity: i64) -> Result<Item, ApiError> {
        let created = now_millis();
        let quantity_bson = match i32::try_from(quantity) {
            Ok(q) => Bson::Int32(q),
            Err(_) => Bson::Int64(quantity),
        };
        let document = doc! {
            "_id": ObjectId::new(),
            "name": name,
            "quantity": quantity_bson,
            "created_at": BsonDateTime::from_millis(created.timestamp_millis()),
        };
        let stored = document.clone();
        self.run("create item", |h| async move {
            Self::items(&h).insert_one(stored).await.map(|_| ())
        })
        .await?;
        item(&document)
    }

    pub async fn get(&self, item_id: &str) -> Result<Item, ApiError> {
        let oid = object_id(item_id)?;
        let found = self
            .run("get item", |h| async move {
                Self::items(&h).find_one(doc! {"_id": oid}).await
            })
            .await?;
        found.as_ref().map(item).unwrap_or_else(|| Err(not_found()))
    }

    pub async fn list(&self, limit: i64) -> Result<ItemList, ApiError> {
        check_limit(limit)?;
        let docs: Vec<Document> = self
            .run("list items", |h| async move {
                Self::items(&h)
                    .find(doc! {})
                    .sort(doc! {"created_at": -1, "_id": -1})
                    .limit(limit)
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        let items = docs.iter().map(item).collect::<Result<_, _>>()?;
        Ok(ItemList { items })
    }

    pub async fn delete(&self, item_id: &str) -> Result<(), ApiError> {
        let oid = object_id(item_id)?;
        let result = self
            .run("delete item", |h| async move {
                Self::items(&h).delete_one(doc! {"_id": oid}).await
            })
            .await?;
        if result.deleted_count == 0 {
            return Err(not_found());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_or_404() {
        assert!(object_id("000000000000000000000000").is_ok());
        assert!(matches!(
            object_id("parity-missing"),
            Err(ApiError::NotFound(_))
        ));
    }
}
