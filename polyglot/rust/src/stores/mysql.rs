//! MariaDB (the MySQL server here) through mysql_async, TLS verified against the stack's CA.

use mysql_async::prelude::Queryable;
use mysql_async::{OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts};
use tokio::sync::OnceCell;

use super::{
    bounded, check_limit, iso, now_millis, uuid_or_404, Context, Item, ItemList, Managed,
    QueryResult,
};
use crate::problems::{ApiError, Dependency};
use crate::vault::KvSecret;

const DEP: Dependency = Dependency::Mysql;
const ITEM_COLUMNS: &str =
    "id, name, CAST(quantity AS SIGNED), DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%f')";

type ItemRow = (String, String, i64, String);

pub struct Mysql {
    ctx: Context,
    managed: Managed<Pool>,
    schema: OnceCell<()>,
}

fn naive_to_iso(text: &str) -> Result<String, ApiError> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| iso(&t.and_utc()))
        .map_err(|_| ApiError::unavailable(DEP, "unexpected timestamp"))
}

impl Mysql {
    pub fn new(ctx: Context) -> Self {
        Mysql {
            ctx,
            managed: Managed::new(DEP),
            schema: OnceCell::new(),
        }
    }

    fn build(&self, secret: &KvSecret) -> Result<Pool, ApiError> {
        let s = &self.ctx.settings;
        let (host, port) = s.endpoint("mysql", true);
        let missing = |k: &str| ApiError::unavailable(DEP, format!("the secret has no {k}"));
        let constraints = PoolConstraints::new(0, s.pool_max_size)
            .ok_or_else(|| ApiError::unavailable(DEP, "bad pool size"))?;
        let mut opts = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(secret.text("user").ok_or_else(|| missing("user"))?))
            .pass(Some(
                secret
                    .secret("password")
                    .ok_or_else(|| missing("password"))?
                    .expose(),
            ))
            .db_name(Some(
                secret.text("database").ok_or_else(|| missing("database"))?,
            ))
            .prefer_socket(false)
            .conn_ttl(Some(std::time::Duration::from_secs(300)))
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(constraints)
                    .with_inactive_connection_ttl(std::time::Duration::from_secs(300)),
            );
        if secret.tls_enabled() {
            opts = opts.ssl_opts(Some(
                SslOpts::default()
                    .with_root_certs(vec![self.ctx.trust.ca_file.clone().into()])
                    .with_disable_built_in_roots(true),
            ));
        }
        Ok(Pool::new(opts))
    }

    async fn pool(&self) -> Result<std::sync::Arc<Pool>, ApiError> {
        self.managed
            .client(
                &self.ctx.secrets,
                |secret| async move { self.build(&secret) },
            )
            .await
    }

    fn translate(&self, what: &str, err: &mysql_async::Error) -> ApiError {
        match err {
            mysql_async::Error::Server(server) => match server.code {
                // Data too long, out of range, incorrect string value, truncated.
                1264 | 1265 | 1366 | 1406 | 1292 => {
                    ApiError::InvalidValue("mysql cannot store this value".into())
                }
                1045 => {
                    self.managed.on_auth_error(&self.ctx.secrets);
                    ApiError::unavailable(DEP, format!("{what}: authentication failed"))
                }
                _ => ApiError::unavailable(DEP, format!("{what}: server error")),
            },
            _ => ApiError::unavailable(DEP, format!("{what}: connection failed")),
        }
    }

    async fn conn(&self, what: &str) -> Result<mysql_async::Conn, ApiError> {
        let pool = self.pool().await?;
        pool.get_conn().await.map_err(|e| self.translate(what, &e))
    }

    pub async fn health(&self) -> Result<(), ApiError> {
        let timeout = self.ctx.settings.operation_timeout;
        bounded(DEP, "health", timeout, async {
            let mut conn = self.conn("health").await?;
            conn.query_drop("SELECT 1")
                .await
                .map_err(|e| self.translate("health", &e))
        })
        .await
    }

    async fn ensure_schema(&self) -> Result<(), ApiError> {
        let timeout = self.ctx.settings.operation_timeout;
        self.schema
            .get_or_try_init(|| {
                bounded(DEP, "create table", timeout, async {
                    let mut conn = self.conn("create table").await?;
                    // Microseconds: two inserts on loopback can land in the same millisecond.
                    conn.query_drop(
                        "CREATE TABLE IF NOT EXISTS items (id CHAR(36) PRIMARY KEY, \
                         name VARCHAR(100) NOT NULL, quantity INT UNSIGNED NOT NULL DEFAULT 0, \
                         created_at DATETIME(6) NOT NULL, KEY by_created (created_at, id)) \
                         CHARACTER SET utf8mb4",
                    )
                    .await
                    .map_err(|e| self.translate("create table", &e))
                })
            })
            .await
            .map(|_| ())
    }

    pub async fn query(&self) -> Result<QueryResult, ApiError> {
        let timeout = self.ctx.settings.operation_timeout;
        bounded(DEP, "query", timeout, async {
            let mut conn = self.conn("query").await?;
            let row: Option<(String, String)> = conn
                .query_first(
                    "SELECT VERSION(), DATE_FORMAT(UTC_TIMESTAMP(3), '%Y-%m-%dT%H:%i:%s.%f')",
                )
                .await
                .map_err(|e| self.translate("query", &e))?;
            let (version, time) = row.ok_or_else(|| ApiError::unavailable(DEP, "query: no row"))?;
            Ok(QueryResult {
                database: "mysql",
                server_version: version,
                server_time: naive_to_iso(&time)?,
            })
        })
        .await
    }

    fn item(row: ItemRow) -> Result<Item, ApiError> {
        Ok(Item {
            id: row.0,
            name: row.1,
            quantity: row.2,
            created_at: naive_to_iso(&row.3)?,
        })
    }

    pub async fn create(&self, name: &str, quantity: i64) -> Result<Item, ApiError> {
        self.ensure_schema().await?;
        let created = now_millis();
        let item = Item {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            quantity,
            created_at: iso(&created),
        };
        let stamp = created.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        let timeout = self.ctx.settings.operation_timeout;
        bounded(DEP, "create item", timeout, async {
            let mut conn = self.conn("create item").await?;
            conn.exec_drop(
                "INSERT INTO items (id, name, quantity, created_at) VALUES (?, ?, ?, ?)",
                (&item.id, &item.name, item.quantity, &stamp),
            )
            .await
            .map_err(|e| self.translate("create item", &e))
        })
        .await?;
        Ok(item)
    }

    pub async fn get(&self, item_id: &str) -> Result<Item, ApiError> {
        let id = uuid_or_404(item_id, "mysql")?;
        self.ensure_schema().await?;
        let timeout = self.ctx.settings.operation_timeout;
        let row: Option<ItemRow> = bounded(DEP, "get item", timeout, async {
            let mut conn = self.conn("get item").await?;
            conn.exec_first(
                format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = ?"),
                (id,),
            )
            .await
            .map_err(|e| self.translate("get item", &e))
        })
        .await?;
        match row {
            Some(row) => Self::item(row),
            None => Err(ApiError::NotFound("no mysql item has this id".into())),
        }
    }

    pub async fn list(&self, limit: i64) -> Result<ItemList, ApiError> {
        check_limit(limit)?;
        self.ensure_schema().await?;
        let timeout = self.ctx.settings.operation_timeout;
        let rows: Vec<ItemRow> = bounded(DEP, "list items", timeout, async {
            let mut conn = self.conn("list items").await?;
            conn.exec(
                format!(
                    "SELECT {ITEM_COLUMNS} FROM items ORDER BY created_at DESC, id DESC LIMIT ?"
                ),
                (limit,),
            )
            .await
            .map_err(|e| self.translate("list items", &e))
        })
        .await?;
        let items = rows.into_iter().map(Self::item).collect::<Result<_, _>>()?;
        Ok(ItemList { items })
    }

    pub async fn delete(&self, item_id: &str) -> Result<(), ApiError> {
        let id = uuid_or_404(item_id, "mysql")?;
        self.ensure_schema().await?;
        let timeout = self.ctx.settings.operation_timeout;
        let affected = bounded(DEP, "delete item", timeout, async {
            let mut conn = self.conn("delete item").await?;
            conn.exec_drop("DELETE FROM items WHERE id = ?", (id,))
                .await
                .map_err(|e| self.translate("delete item", &e))?;
            Ok(conn.affected_rows())
        })
        .await?;
        if affected == 0 {
            return Err(ApiError::NotFound("no mysql item has this id".into()));
        }
        Ok(())
    }
}
