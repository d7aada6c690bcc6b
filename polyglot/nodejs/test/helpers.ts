/** Test helpers: an app on an ephemeral port around a fake stack, and a log capture. */
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";

import { createApp } from "../src/app.js";
import { NotFound } from "../src/errors.js";
import { HealthChecker, type Probe } from "../src/health.js";
import { createLogger, type Logger } from "../src/log.js";
import { Metrics } from "../src/metrics.js";
import { Redactor } from "../src/redaction.js";
import { SecretReader, type Stack } from "../src/stack.js";
import type { Backend, Item, ItemRepository } from "../src/stores/models.js";
import type { CacheService, ClusterService, RedisPool } from "../src/stores/redis.js";
import type { QueueService } from "../src/stores/rabbitmq.js";
import { SecretStore } from "../src/vault/secrets.js";

export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    for (const line of chunk.toString("utf8").split("\n")) if (line.trim() !== "") this.lines.push(JSON.parse(line) as Record<string, unknown>);
    callback();
  }
  text(): string {
    return this.lines.map((l) => JSON.stringify(l)).join("\n");
  }
}

export function captureLogger(redactor = new Redactor()): { logger: Logger; capture: LogCapture } {
  const capture = new LogCapture();
  return { logger: createLogger("debug", { redactor, destination: capture }), capture };
}

/** An in-memory item repository. */
export class MemoryItems implements ItemRepository {
  readonly rows = new Map<string, Item>();
  constructor(readonly backend: Backend) {}
  query() {
    return Promise.resolve({ database: this.backend, server_version: "test", server_time: "2026-01-01T00:00:00Z" });
  }
  create(item: { name: string; quantity: number }) {
    const made = { id: `id-${this.rows.size + 1}`, name: item.name, quantity: item.quantity, created_at: "2026-01-01T00:00:00Z" };
    this.rows.set(made.id, made);
    return Promise.resolve(made);
  }
  get(id: string) {
    const row = this.rows.get(id);
    return row === undefined ? Promise.reject(new NotFound(`no ${this.backend} item has this id`)) : Promise.resolve(row);
  }
  list(limit: number) {
    return Promise.resolve({ items: [...this.rows.values()].slice(0, limit) });
  }
  async delete(id: string) {
    await this.get(id);
    this.rows.delete(id);
  }
}

export interface FakeStack extends Stack {
  repos: Map<Backend, MemoryItems>;
  cacheCalls: unknown[][];
}

export function fakeStack(overrides: Partial<Stack> = {}, probes?: Map<string, Probe>): FakeStack {
  const repos = new Map<Backend, MemoryItems>((["postgres", "mysql", "mongodb"] as const).map((b) => [b, new MemoryItems(b)]));
  const cacheCalls: unknown[][] = [];
  const store = new SecretStore(
    (path) => Promise.resolve({ path, version: 3, data: { user: "app", password: "s3cret-value", port: 5432, tls_enabled: true } }),
    300,
  );
  const cache = {
    get: (key: string) => Promise.reject(new NotFound(`cache key ${JSON.stringify(key)} does not exist`)),
    put: (key: string, value: string, ttl?: number) => {
      cacheCalls.push([key, value, ttl]);
      return Promise.resolve({ entry: { key, value, ttl_seconds: ttl ?? null }, created: true });
    },
    delete: () => Promise.resolve(),
  } as unknown as CacheService;
  const healthy: Probe = () => Promise.resolve(undefined);
  return {
    repos,
    cacheCalls,
    items: (backend: Backend) => repos.get(backend) as MemoryItems,
    cache,
    cluster: Object.create(null) as ClusterService,
    queues: { publish: (queue: string) => Promise.resolve({ queue, message_id: "m" }) } as unknown as QueueService,
    secrets: new SecretReader(store, "secret"),
    health: new HealthChecker(probes ?? new Map<string, Probe>([["vault", healthy], ["postgres", healthy]]), 0.5),
    redis: Object.create(null) as RedisPool,
    vault: undefined,
    close: () => Promise.resolve(),
    ...overrides,
  };
}

export interface Running {
  url: string;
  metrics: Metrics;
  capture: LogCapture;
  close(): Promise<void>;
}

export async function serve(stack: Stack, api: Partial<{ corsOrigins: string[]; bodyLimit: number }> = {}): Promise<Running> {
  const { logger, capture } = captureLogger();
  const metrics = new Metrics();
  const app = createApp({
    api: { corsOrigins: api.corsOrigins ?? [], rateLimit: 0, rateWindowSeconds: 60, bodyLimit: api.bodyLimit ?? 1_048_576 },
    stack,
    metrics,
    logger,
  });
  const server = http.createServer(app);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    metrics,
    capture,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A raw request (fetch would add or fix headers such as Content-Length). */
export function raw(url: string, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
