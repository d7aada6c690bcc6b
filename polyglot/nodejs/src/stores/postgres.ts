/** PostgreSQL: a pg Pool over TLS verified against the stack's CA, and the items table. */
import { randomUUID } from "node:crypto";

import type pg from "pg";

import { NotFound } from "../errors.js";
import type { KvSecret } from "../vault/client.js";
import { canonicalUuid, MAX_PAGE, type Item, type ItemCreate, type ItemList, type ItemRepository, type QueryResult } from "./models.js";
import { lazyModule, ManagedPool, secretText, tlsEnabled } from "./pool.js";
import { formatInstant, now, parseSqlTimestamp } from "./time.js";

const TIMESTAMPTZ_OID = 1184;

const driver = lazyModule(async () => (await import("pg")).default);

// Timestamps as text: pg's Date would drop microseconds that another implementation may have stored.
function textTimestamps(module: typeof pg): pg.CustomTypesConfig {
  const builtin = module.types.getTypeParser as (oid: number, format: "text" | "binary") => (value: string) => unknown;
  return {
    getTypeParser: ((oid: number, format?: "text" | "binary") => {
      if (oid === TIMESTAMPTZ_OID) return (value: string) => value;
      return builtin(oid, format ?? "text");
    }) as pg.CustomTypesConfig["getTypeParser"],
  };
}

export class PostgresPool extends ManagedPool<pg.Pool> {
  readonly name = "postgres" as const;

  protected async build(secret: KvSecret): Promise<pg.Pool> {
    const { host, port } = this.ctx.settings.endpoints.postgres;
    const s = this.ctx.settings;
    const module = await driver();
    const pool = new module.Pool({
      host,
      port,
      user: secretText(secret, "user"),
      password: secretText(secret, "password"),
      database: secretText(secret, "database"),
      ssl: tlsEnabled(secret) ? { ca: this.ctx.ca, rejectUnauthorized: true, minVersion: "TLSv1.2" } : false,
      max: s.poolMaxSize,
      // pg counts the wait for a free connection in this timeout too: a busy pool must queue its
      // callers within the operation timeout, not fail them after the connect timeout.
      connectionTimeoutMillis: Math.max(s.connectTimeout, s.operationTimeout) * 1000,
      idleTimeoutMillis: 300_000,
      query_timeout: s.operationTimeout * 1000,
      application_name: "devstack_nodejs",
      options: "-c TimeZone=UTC",
      types: textTimestamps(module),
    });
    // An idle connection that breaks (the server restarted) is dropped by the pool; without a
    // listener the 'error' event would end the process.
    pool.on("error", (error) => this.ctx.logger.warn({ dependency: this.name, reason: error.name }, "idle connection lost"));
    return pool;
  }

  protected async warmUp(pool: pg.Pool): Promise<void> {
    await pool.query("SELECT 1");
  }

  protected async closeClient(pool: pg.Pool): Promise<void> {
    await pool.end();
  }

  protected override isRejectedData(error: unknown): boolean {
    // SQLSTATE class 22: data exception (a value the column cannot hold).
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" && code.startsWith("22");
  }

  protected override isAuthError(error: unknown): boolean {
    const code = (error as { code?: unknown }).code;
    return code === "28P01" || code === "28000";
  }

  query<R extends pg.QueryResultRow>(what: string, text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.operation(what, (pool) => pool.query<R>(text, values));
  }
}

interface ItemRow {
  id: string;
  name: string;
  quantity: number;
  created_at: string;
}

function toItem(row: ItemRow): Item {
  return { id: row.id, name: row.name, quantity: row.quantity, created_at: formatInstant(parseSqlTimestamp(row.created_at)) };
}

export class PostgresItems implements ItemRepository {
  readonly backend = "postgres" as const;
  private schemaReady: Promise<void> | undefined;

  constructor(private readonly pool: PostgresPool) {}

  private ensureSchema(): Promise<void> {
    this.schemaReady ??= this.pool
      .query(
        "create table",
        "CREATE TABLE IF NOT EXISTS items (id uuid PRIMARY KEY, name varchar(100) NOT NULL, " +
          "quantity integer NOT NULL DEFAULT 0, created_at timestamptz NOT NULL)",
      )
      .then(
        () => undefined,
        (error: unknown) => {
          const code = (error as { cause?: { code?: unknown } }).cause?.code;
          if (code === "23505" || code === "42P07") return; // created by another process meanwhile
          this.schemaReady = undefined;
          throw error;
        },
      );
    return this.schemaReady;
  }

  async query(): Promise<QueryResult> {
    const result = await this.pool.query<{ version: string; time: string }>(
      "query",
      "SELECT current_setting('server_version') AS version, now() AS time",
    );
    const row = result.rows[0];
    return { database: "postgres", server_version: row?.version ?? "", server_time: formatInstant(parseSqlTimestamp(row?.time ?? "")) };
  }

  async create(item: ItemCreate): Promise<Item> {
    await this.ensureSchema();
    const result = await this.pool.query<ItemRow>(
      "create item",
      "INSERT INTO items (id, name, quantity, created_at) VALUES ($1, $2, $3, $4) RETURNING id::text, name, quantity, created_at",
      [randomUUID(), item.name, item.quantity, new Date(now().ms).toISOString()],
    );
    const row = result.rows[0];
    if (row === undefined) throw new NotFound("no postgres item was created");
    return toItem(row);
  }

  async get(id: string): Promise<Item> {
    const key = canonicalUuid(id);
    if (key === undefined) throw new NotFound("no postgres item has this id");
    await this.ensureSchema();
    const result = await this.pool.query<ItemRow>("get item", "SELECT id::text, name, quantity, created_at FROM items WHERE id = $1", [key]);
    const row = result.rows[0];
    if (row === undefined) throw new NotFound("no postgres item has this id");
    return toItem(row);
  }

  async list(limit: number): Promise<ItemList> {
    await this.ensureSchema();
    const result = await this.pool.query<ItemRow>(
      "list items",
      "SELECT id::text, name, quantity, created_at FROM items ORDER BY created_at DESC, id DESC LIMIT $1",
      [Math.min(limit, MAX_PAGE)],
    );
    return { items: result.rows.map(toItem) };
  }

  async delete(id: string): Promise<void> {
    const key = canonicalUuid(id);
    if (key === undefined) throw new NotFound("no postgres item has this id");
    await this.ensureSchema();
    const result = await this.pool.query("delete item", "DELETE FROM items WHERE id = $1", [key]);
    if (result.rowCount === 0) throw new NotFound("no postgres item has this id");
  }
}
