/**
 * The application's connection to the stack, created once at start: Vault login (kept alive), the
 * CA, each dependency's secret (cached, refreshed in the background), one pool per dependency
 * (a server down at start is connected on first use), the use cases and the health probes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { DEPENDENCIES, type Dependency, type Settings } from "./config.js";
import { ConfigurationError, DependencyError, NotFound, VaultError, quoted } from "./errors.js";
import { HealthChecker, type CheckOutcome, type Probe } from "./health.js";
import type { Logger } from "./log.js";
import type { Metrics } from "./metrics.js";
import { isMaskedKey, MASK } from "./redaction.js";
import type { Backend, ItemRepository } from "./stores/models.js";
import { MongoItems, MongoPool } from "./stores/mongodb.js";
import { MySQLItems, MySQLPool } from "./stores/mysql.js";
import type { ManagedPool, PoolContext } from "./stores/pool.js";
import { PostgresItems, PostgresPool } from "./stores/postgres.js";
import { QueueService, RabbitPool } from "./stores/rabbitmq.js";
import { CacheService, ClusterService, RedisPool } from "./stores/redis.js";
import { VaultClient } from "./vault/client.js";
import { SecretStore } from "./vault/secrets.js";

export interface SecretView {
  service: string;
  path: string;
  version: number;
  data: Record<string, string>;
  masked_keys: string[];
}

function asText(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The application secrets of the stack's dependencies, masked (served from the cache). */
export class SecretReader {
  constructor(
    private readonly store: SecretStore,
    private readonly kvMount: string,
  ) {}

  async read(service: string): Promise<SecretView> {
    if (!(DEPENDENCIES as readonly string[]).includes(service)) throw new NotFound(`no secret for ${quoted(service)}`);
    let secret;
    try {
      secret = await this.store.get(service);
    } catch (error) {
      if (error instanceof VaultError && error.httpStatus === 403) throw new NotFound(`the secret of ${quoted(service)} is not readable`);
      throw error;
    }
    const data: Record<string, string> = {};
    for (const [key, value] of Object.entries(secret.data)) data[key] = isMaskedKey(key) ? MASK : asText(value);
    const masked = Object.keys(secret.data)
      .filter(isMaskedKey)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { service, path: `${this.kvMount}/${service}`, version: secret.version, data, masked_keys: masked };
  }

  async readKey(service: string, key: string): Promise<{ service: string; key: string; value: string; masked: boolean }> {
    const view = await this.read(service);
    const value = Object.hasOwn(view.data, key) ? view.data[key] : undefined;
    if (value === undefined) throw new NotFound(`the secret of ${quoted(service)} has no key ${quoted(key)}`);
    return { service, key, value, masked: isMaskedKey(key) };
  }
}

export interface Stack {
  readonly items: (backend: Backend) => ItemRepository;
  readonly cache: CacheService;
  readonly cluster: ClusterService;
  readonly queues: QueueService;
  readonly secrets: SecretReader;
  readonly health: HealthChecker;
  readonly redis: RedisPool;
  readonly vault: VaultClient | undefined;
  close(): Promise<void>;
}

export class DevStack implements Stack {
  readonly vault: VaultClient;
  readonly store: SecretStore;
  private tmpCaDir: string | undefined;
  private pools: Partial<Record<Dependency, ManagedPool<unknown>>> = {};
  private repositories = new Map<Backend, ItemRepository>();
  cache!: CacheService;
  cluster!: ClusterService;
  queues!: QueueService;
  secrets!: SecretReader;
  health!: HealthChecker;
  redis!: RedisPool;

  constructor(
    readonly settings: Settings,
    private readonly logger: Logger,
    private readonly metrics?: Metrics,
  ) {
    this.vault = new VaultClient(settings, { metrics, logger: logger.child({ component: "vault" }) });
    this.store = new SecretStore((p) => this.vault.kvRead(p), settings.secretTtl, { metrics, logger });
  }

  async start(): Promise<void> {
    try {
      await this.vault.start();
      const { ca, caFile } = await this.loadTrust();
      await Promise.all(DEPENDENCIES.map((dependency) => this.store.get(dependency)));
      this.store.start();
      const ctx: PoolContext = { settings: this.settings, secrets: this.store, ca, caFile, metrics: this.metrics, logger: this.logger };
      const postgres = new PostgresPool(ctx);
      const mysql = new MySQLPool(ctx);
      const mongodb = new MongoPool(ctx);
      this.redis = new RedisPool(ctx);
      const rabbitmq = new RabbitPool(ctx);
      this.pools = { postgres, mysql, mongodb, redis: this.redis, rabbitmq };
      this.repositories = new Map<Backend, ItemRepository>([
        ["postgres", new PostgresItems(postgres)],
        ["mysql", new MySQLItems(mysql)],
        ["mongodb", new MongoItems(mongodb)],
      ]);
      this.cache = new CacheService(this.redis, this.settings.cacheKeyPrefix);
      this.cluster = new ClusterService(this.redis);
      this.queues = new QueueService(rabbitmq, this.settings.operationTimeout);
      this.secrets = new SecretReader(this.store, this.settings.kvMount);
      const budget = this.settings.healthTimeout;
      const probes = new Map<string, Probe>([
        ["vault", () => this.probeVault(budget)],
        ["postgres", async () => (await postgres.operation("health", (pool) => pool.query("SELECT 1"), budget), undefined)],
        ["mysql", async () => (await mysql.operation("health", (pool) => pool.query("SELECT 1"), budget), undefined)],
        ["mongodb", async () => (await mongodb.operation("health", ({ db }) => db.command({ ping: 1 }), budget), undefined)],
        ["redis", () => this.probeRedis()],
        ["rabbitmq", async () => (await this.queues.probe(budget), undefined)],
      ]);
      // Each probe bounds its own operation by the health budget (so the outage policy applies
      // to it); the checker's own deadline is a backstop a little later.
      this.health = new HealthChecker(probes, budget + 1, this.metrics);
    } catch (error) {
      await this.close();
      throw error;
    }
    this.logger.info({ dependencies: DEPENDENCIES }, "devstack client started");
  }

  /**
   * The pools' first round trips (their drivers imported then), in the background: called once
   * the listeners are open, so `/health` answers without waiting for them. A request that comes
   * first joins the same single-flight build; a server down at start is logged by its pool and
   * connected on first use either way.
   */
  warmUp(): void {
    // Each pool's start() logs its own failure and never rejects.
    for (const pool of Object.values(this.pools)) void pool.start();
  }

  items(backend: Backend): ItemRepository {
    const repository = this.repositories.get(backend);
    if (repository === undefined) throw new ConfigurationError(`${backend} is not enabled`);
    return repository;
  }

  private async loadTrust(): Promise<{ ca: string; caFile: string }> {
    const file = this.settings.caFile;
    if (file !== undefined) {
      let pem: string;
      try {
        pem = readFileSync(file, "utf8");
      } catch {
        throw new ConfigurationError(`cannot read the CA file ${file}`);
      }
      if (!pem.includes("BEGIN CERTIFICATE")) throw new ConfigurationError(`the CA file ${file} holds no PEM certificate`);
      return { ca: pem, caFile: file };
    }
    const pem = await this.vault.caChain();
    this.tmpCaDir = mkdtempSync(path.join(tmpdir(), "devstack-nodejs-ca-"));
    const caFile = path.join(this.tmpCaDir, "ca-chain.pem");
    writeFileSync(caFile, pem, { mode: 0o600 });
    return { ca: pem, caFile };
  }

  /** Vault's own health at every check (docs/api.md): unreachable is degraded while every
   *  secret is served from the cache, else unhealthy. */
  private async probeVault(budget: number): Promise<CheckOutcome> {
    const health = await this.vault.checkHealth(budget);
    const states = this.store.states();
    const cached = states.length >= DEPENDENCIES.length;
    const stale = states.filter((s) => s.stale).map((s) => s.path);
    if (health !== "ok") {
      if (cached) return { status: "degraded", error: health === "timeout" ? "timeout" : "unavailable", reason: "unreachable; serving cached credentials" };
      return { status: "unhealthy", error: health === "timeout" ? "timeout" : health === "sealed" ? "not_ready" : "unavailable" };
    }
    if (!this.vault.status().authenticated) {
      return cached ? { status: "degraded", error: "unavailable", reason: "no valid token" } : { status: "unhealthy", error: "unavailable", reason: "no valid token" };
    }
    if (stale.length > 0) return { status: "degraded", error: "unavailable", reason: `stale secrets: ${stale.join(", ")}` };
    return { status: "healthy" };
  }

  private async probeRedis(): Promise<CheckOutcome> {
    const { state } = await this.cluster.probe(this.settings.healthTimeout);
    if (state !== "ok") return { status: "unhealthy", error: "not_ready", reason: `cluster state is ${state}` };
    return { status: "healthy" };
  }

  async close(): Promise<void> {
    const pools = Object.values(this.pools);
    this.pools = {};
    await Promise.allSettled(pools.map((pool) => pool.close()));
    this.store.stop();
    await this.vault.close().catch((error: unknown) => {
      if (!(error instanceof DependencyError)) throw error;
    });
    if (this.tmpCaDir !== undefined) rmSync(this.tmpCaDir, { recursive: true, force: true });
  }
}
