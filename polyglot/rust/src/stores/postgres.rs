//! PostgreSQL through deadpool-postgres + tokio-postgres, TLS verified against the stack's CA.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    bounded, check_limit, from_micros, iso, now_millis, uuid_or_404, Context, Item, ItemList,
    Managed, QueryResult,
};
use crate::problems::{ApiError, Dependency};
use crate::vault::KvSecret;

const DEP: Dependency = Dependency::Postgres;
const ITEM_COLUMNS: &str = "id::text, name, quantity::int8, \
     (extract(epoch from created_at) * 1000000)::int8";

pub struct Postgres {
    ctx: Context,
    managed: Managed<Pool>,
    schema: OnceCell<()>,
}

impl Postgres {
    pub fn new(ctx: Context) -> Self {
        Postgres {
            ctx,
            managed: Managed::new(DEP),
            schema: OnceCell::new(),
        }
    }

    fn build(&self, secret: &KvSecret) -> Result<Pool, ApiError> {
        let s = &self.ctx.settings;
        let (host, port) = s.endpoint("postgres", true);
        let missing = |k: &str| ApiError::unavailable(DEP, format!("the secret has no {k}"));
        let mut config = tokio_postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .user(secret.text("user").ok_or_else(|| missing("user"))?)
            .password(
                secret
                    .secret("password")
                    .ok_or_else(|| missing("password"))?
                    .expose(),
            )
            .dbname(secret.text("database").ok_or_else(|| missing("database"))?)
            .application_name("devstack_rust")
            .connect_timeout(s.connect_timeout);
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if secret.tls_enabled() {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = MakeRustlsConnect::new((*self.ctx.trust.client).clone());
            Manager::from_config(config, tls, manager_config)
        } else {
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        };
        Pool::builder(manager)
            .max_size(s.pool_max_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(s.connect_timeout))
            .wait_timeout(Some(s.operation_timeout))
            .build()
            .map_err(|_| ApiError::unavailable(DEP, "cannot build the pool"))
    }

    async fn pool(&self) -> Result<std::sync::Arc<Pool>, ApiError> {
        self.managed
            .client(
                &self.ctx.secrets,
                |secret| async move { self.build(&secret) },
            )
            .await
    }

    fn translate(&self, what: &str, err: &tokio_postgres::Error) -> ApiError {
        match err.code() {
            // A data exception (class 22): the server refused this value.
            Some(code) if code.code().starts_with("22") => {
                ApiError::InvalidValue("postgres cannot store this value".into())
            }
            Some(code)
                if *code == SqlState::INVALID_PASSWORD
                    || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                self.managed.on_auth_error(&self.ctx.secrets);
                ApiError::unavailable(DEP, format!("{what}: authentication failed"))
            }
            Some(_) => ApiError::unavailable(DEP, format!("{what}: server error")),
            None => ApiError::unavailable(DEP, format!("{what}: connection failed")),
        }
    }

    async fn client(&self, what: &str) -> Result<deadpool_postgres::Object, ApiError> {
        let pool = self.pool().await?;
        pool.get().await.map_err(|err| match err {
            deadpool_postgres::PoolError::Backend(e) => self.translate(what, &e),
            deadpool_postgres::PoolError::Timeout(_) => {
                ApiError::timeout(DEP, format!("{what}: no connection in time"))
            }
            _ => ApiError::unavailable(DEP, format!("{what}: pool closed")),
        })
    }

    async fn rows(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, ApiError> {
        let timeout = self.ctx.settings.operation_timeout;
        bounded(DEP, what, timeout, async {
            let client = self.client(what).await?;
            let statement = client
                .prepare_cached(sql)
                .await
                .map_err(|e| self.translate(what, &e))?;
            client
                .query(&statement, params)
                .await
                .map_err(|e| self.translate(what, &e))
        })
        .await
    }

    async fn ensure_schema(&self) -> Result<(), ApiError> {
        self.schema
            .get_or_try_init(|| async {
                let ddl = "CREATE TABLE IF NOT EXISTS items (id uuid PRIMARY KEY, \
                           name varchar(100) NOT NULL, quantity integer NOT NULL DEFAULT 0, \
                           created_at timestamptz NOT NULL)";
                if self.rows("create table", ddl, &[]).await.is_ok() {
                    return Ok(());
                }
                // Another process may have created it at the same moment: once more.
                self.rows("create table", ddl, &[]).await.map(|_| ())
            })
            .await
            .map(|_| ())
    }

    pub async fn health(&self) -> Result<(), ApiError> {
        self.rows("health", "SELECT 1", &[]).await.map(|_| ())
    }

    pub async fn query(&self) -> Result<QueryResult, ApiError> {
        let rows = self
            .rows(
                "query",
                "SELECT current_setting('server_version'), \
                 (extract(epoch from now()) * 1000000)::int8",
                &[],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| ApiError::unavailable(DEP, "query: no row"))?;
        let version: String = row.try_get(0).map_err(|e| self.translate("query", &e))?;
        let micros: i64 = row.try_get(1).map_err(|e| self.translate("query", &e))?;
        Ok(QueryResult {
            database: "postgres",
            server_version: version,
            server_time: iso(&from_micros(micros)),
        })
    }

    fn item(&self, row: &tokio_postgres::Row) -> Result<Item, ApiError> {
        let bad = |e: tokio_postgres::Error| self.translate("read item", &e);
        Ok(Item {
            id: row.try_get(0).map_err(bad)?,
            name: row.try_get(1).map_err(bad)?,
            quantity: row.try_get(2).map_err(bad)?,
            created_at: iso(&from_micros(row.try_get(3).map_err(bad)?)),
        })
    }

    pub async fn create(&self, name: &str, quantity: i64) -> Result<Item, ApiError> {
        self.ensure_schema().await?;
        let id = uuid::Uuid::new_v4().to_string();
        let created = now_millis();
        let stamp = created.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let quantity = i32::try_from(quantity)
            .map_err(|_| ApiError::InvalidValue("postgres cannot store this value".into()))?;
        let rows = self
            .rows(
                "create item",
                &format!(
                    "INSERT INTO items (id, name, quantity, created_at) \
                     VALUES ($1::text::uuid, $2::text, $3::int4, $4::text::timestamptz) \
                     RETURNING {ITEM_COLUMNS}"
                ),
                &[&id, &name, &quantity, &stamp],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| ApiError::unavailable(DEP, "create item: no row"))?;
        self.item(row)
    }

    pub async fn get(&self, item_id: &str) -> Result<Item, ApiError> {
        let id = uuid_or_404(item_id, "postgres")?;
        self.ensure_schema().await?;
        let rows = self
            .rows(
                "get item",
                &format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = $1::text::uuid"),
                &[&id],
            )
            .await?;
        match rows.first() {
            Some(row) => self.item(row),
            None => Err(ApiError::NotFound("no postgres item has this id".into())),
        }
    }

    pub async fn list(&self, limit: i64) -> Result<ItemList, ApiError> {
        check_limit(limit)?;
        self.ensure_schema().await?;
        let rows = self
            .rows(
                "list items",
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM items ORDER BY created_at DESC, id DESC LIMIT $1::int8"
                ),
                &[&limit],
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| self.item(r))
            .collect::<Result<_, _>>()?;
        Ok(ItemList { items })
    }

    pub async fn delete(&self, item_id: &str) -> Result<(), ApiError> {
        let id = uuid_or_404(item_id, "postgres")?;
        self.ensure_schema().await?;
        let rows = self
            .rows(
                "delete item",
                "DELETE FROM items WHERE id = $1::text::uuid RETURNING 1",
                &[&id],
            )
            .await?;
        if rows.is_empty() {
            return Err(ApiError::NotFound("no postgres item has this id".into()));
        }
        Ok(())
    }
}
