/** MySQL (MariaDB): a mysql2 pool over TLS verified against the stack's CA, and the items table. */
import { randomUUID } from "node:crypto";

import type mysql from "mysql2/promise";

import { NotFound } from "../errors.js";
import type { KvSecret } from "../vault/client.js";
import { canonicalUuid, MAX_PAGE, type Item, type ItemCreate, type ItemList, type ItemRepository, type QueryResult } from "./models.js";
import { lazyModule, ManagedPool, secretText, tlsEnabled } from "./pool.js";

const driver = lazyModule(async () => (await import("mysql2/promise")).default);
import { formatInstant, now, parseSqlTimestamp, sqlDatetime } from "./time.js";

export class MySQLPool extends ManagedPool<mysql.Pool> {
  readonly name = "mysql" as const;

  protected async build(secret: KvSecret): Promise<mysql.Pool> {
    const { host, port } = this.ctx.settings.endpoints.mysql;
    const s = this.ctx.settings;
    const pool = (await driver()).createPool({
      host,
      port,
      user: secretText(secret, "user"),
      password: secretText(secret, "password"),
      database: secretText(secret, "database"),
      ...(tlsEnabled(secret) ? { ssl: { ca: this.ctx.ca, rejectUnauthorized: true, minVersion: "TLSv1.2" } } : {}),
      connectionLimit: s.poolMaxSize,
      maxIdle: s.poolMaxSize,
      idleTimeout: 300_000,
      connectTimeout: s.connectTimeout * 1000,
      enableKeepAlive: true,
      // DATETIME as text: a Date would drop microseconds another implementation may have stored.
      dateStrings: ["DATETIME"],
      timezone: "Z",
      charset: "utf8mb4",
    });
    return pool;
  }

  protected async warmUp(pool: mysql.Pool): Promise<void> {
    await pool.query("SELECT 1");
  }

  protected async closeClient(pool: mysql.Pool): Promise<void> {
    await pool.end();
  }

  protected override isRejectedData(error: unknown): boolean {
    // ER_DATA_TOO_LONG, ER_WARN_DATA_OUT_OF_RANGE, ER_TRUNCATED_WRONG_VALUE*, incorrect string value.
    const errno = (error as { errno?: unknown }).errno;
    return typeof errno === "number" && [1406, 1264, 1292, 1366, 1367].includes(errno);
  }

  protected override isAuthError(error: unknown): boolean {
    return (error as { errno?: unknown }).errno === 1045;
  }

  async rows<R>(what: string, sql: string, values: unknown[] = []): Promise<R[]> {
    return this.operation(what, async (pool) => {
      const [rows] = await pool.query({ sql, values, timeout: this.ctx.settings.operationTimeout * 1000, rowsAsArray: false });
      return rows as R[];
    });
  }

  async execute(what: string, sql: string, values: unknown[] = []): Promise<number> {
    return this.operation(what, async (pool) => {
      const [result] = await pool.query({ sql, values, timeout: this.ctx.settings.operationTimeout * 1000 });
      return (result as mysql.ResultSetHeader).affectedRows;
    });
  }
}

interface ItemRow {
  id: string;
  name: string;
  quantity: number | string;
  created_at: string;
}

function toItem(row: ItemRow): Item {
  return { id: row.id, name: row.name, quantity: Number(row.quantity), created_at: formatInstant(parseSqlTimestamp(row.created_at)) };
}

export class MySQLItems implements ItemRepository {
  readonly backend = "mysql" as const;
  private schemaReady: Promise<void> | undefined;

  constructor(private readonly pool: MySQLPool) {}

  private ensureSchema(): Promise<void> {
    // Microseconds: two inserts on loopback can land in the same millisecond.
    this.schemaReady ??= this.pool
      .execute(
        "create table",
        "CREATE TABLE IF NOT EXISTS items (id CHAR(36) PRIMARY KEY, name VARCHAR(100) NOT NULL, " +
          "quantity INT UNSIGNED NOT NULL DEFAULT 0, created_at DATETIME(6) NOT NULL, " +
          "KEY by_created (created_at, id)) CHARACTER SET utf8mb4",
      )
      .then(
        () => undefined,
        (error: unknown) => {
          this.schemaReady = undefined;
          throw error;
        },
      );
    return this.schemaReady;
  }

  async query(): Promise<QueryResult> {
    const rows = await this.pool.rows<{ version: string; time: string }>("query", "SELECT VERSION() AS version, CAST(UTC_TIMESTAMP(3) AS CHAR) AS time");
    const row = rows[0];
    return { database: "mysql", server_version: row?.version ?? "", server_time: formatInstant(parseSqlTimestamp(row?.time ?? "")) };
  }

  async create(item: ItemCreate): Promise<Item> {
    await this.ensureSchema();
    const created = now();
    const id = randomUUID();
    await this.pool.execute("create item", "INSERT INTO items (id, name, quantity, created_at) VALUES (?, ?, ?, ?)", [
      id,
      item.name,
      item.quantity,
      sqlDatetime(created),
    ]);
    return { id, name: item.name, quantity: item.quantity, created_at: formatInstant(created) };
  }

  async get(id: string): Promise<Item> {
    const key = canonicalUuid(id);
    if (key === undefined) throw new NotFound("no mysql item has this id");
    await this.ensureSchema();
    const rows = await this.pool.rows<ItemRow>("get item", "SELECT id, name, quantity, created_at FROM items WHERE id = ?", [key]);
    const row = rows[0];
    if (row === undefined) throw new NotFound("no mysql item has this id");
    return toItem(row);
  }

  async list(limit: number): Promise<ItemList> {
    await this.ensureSchema();
    const rows = await this.pool.rows<ItemRow>(
      "list items",
      "SELECT id, name, quantity, created_at FROM items ORDER BY created_at DESC, id DESC LIMIT ?",
      [Math.min(limit, MAX_PAGE)],
    );
    return { items: rows.map(toItem) };
  }

  async delete(id: string): Promise<void> {
    const key = canonicalUuid(id);
    if (key === undefined) throw new NotFound("no mysql item has this id");
    await this.ensureSchema();
    const affected = await this.pool.execute("delete item", "DELETE FROM items WHERE id = ?", [key]);
    if (affected === 0) throw new NotFound("no mysql item has this id");
  }
}
