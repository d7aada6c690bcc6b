/**
 * One managed client per dependency (libs/devstack_client/pools.py): built from the dependency's
 * secret (from the cache, so no Vault call once read) with TLS verified against the stack's CA;
 * connected lazily when the server is down at start; every operation bounded by the operation
 * timeout with errors translated (timeout 504, anything else 503, a value the server refuses 422);
 * rebuilt when the secret's version changes (the old client closed after a grace period), and
 * after an authentication failure the secret is re-read at once.
 */
import net from "node:net";

import type { Settings } from "../config.js";
import { DependencyTimeout, DependencyUnavailable, DevStackError, InvalidInput, describe, type DependencyName } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { KvSecret } from "../vault/client.js";
import type { SecretStore } from "../vault/secrets.js";

const AUTH_REFRESH_MAX_AGE = 2; // an auth failure re-reads the secret unless read in the last 2 s
const REBUILD_RETRY = 1; // a failed rebuild is retried at most once a second

export function tlsEnabled(secret: KvSecret): boolean {
  const value = secret.data.tls_enabled ?? true;
  if (typeof value === "string") return !["false", "0", "no", "off"].includes(value.trim().toLowerCase());
  return Boolean(value);
}

export function secretText(secret: KvSecret, key: string): string {
  const value = secret.data[key];
  if (typeof value === "string") return value;
  if (value === undefined || value === null) return "";
  return typeof value === "number" || typeof value === "boolean" ? String(value) : JSON.stringify(value);
}

export interface PoolContext {
  readonly settings: Settings;
  readonly secrets: SecretStore;
  readonly ca: string;
  readonly caFile: string;
  readonly metrics?: Metrics | undefined;
  readonly logger: Logger;
}

/**
 * A driver module imported on first use, once: the pools build their clients after the listeners
 * opened, so the drivers (two thirds of the module loading) are not on the way to `/health`.
 */
export function lazyModule<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => (loading ??= load());
}

/** Run `work` with a deadline; the timer never keeps the process alive. */
export async function withTimeout<T>(seconds: number, work: Promise<T>, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), seconds * 1000);
    timer.unref();
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether a TCP connection to host:port is refused, opens, or gets no answer in time. */
export function tcpCheck(host: string, port: number, seconds: number): Promise<"refused" | "open" | "timeout"> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: "refused" | "open" | "timeout"): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done("timeout"), seconds * 1000);
    socket.once("connect", () => done("open"));
    socket.once("error", () => done("refused"));
  });
}

export abstract class ManagedPool<C> {
  abstract readonly name: DependencyName;
  private current: C | undefined;
  private currentVersion: number | undefined;
  private building: Promise<C> | undefined;
  private rebuildWanted = false;
  private nextRebuild = 0;
  private unsubscribe: (() => void) | undefined;
  private closed = false;
  private readonly retired = new Set<C>();
  /** The last operation failed as unavailable: each operation first checks that the server
   *  accepts connections, so a stopped server is 503 at once (docs/api.md, outages). */
  private down = false;
  rebuilds = 0;

  constructor(protected readonly ctx: PoolContext) {}

  protected get secretPath(): string {
    return this.name;
  }

  // -- what each dependency provides ----------------------------------------------------------

  protected abstract build(secret: KvSecret): Promise<C>;
  protected abstract closeClient(client: C): Promise<void>;
  /** A first round trip, so that the pool is warm (and a bad secret is seen) at start. */
  protected abstract warmUp(client: C): Promise<void>;
  /** The server refused this value (422), rather than failing. */
  protected isRejectedData(_error: unknown): boolean {
    return false;
  }
  protected isAuthError(_error: unknown): boolean {
    return false;
  }
  /** A client that can no longer work (a closed connection) is replaced at the next use. */
  protected isDead(_client: C): boolean {
    return false;
  }
  /** After a backend error: drop broken connections here. */
  protected onConnectionError(_client: C, _error: unknown): void {
    // Most clients drop broken connections by themselves.
  }

  // -- lifecycle ------------------------------------------------------------------------------

  async start(): Promise<void> {
    this.unsubscribe = this.ctx.secrets.subscribe(this.secretPath, (secret) => {
      if (this.currentVersion !== undefined && secret.version !== this.currentVersion) {
        this.rebuildWanted = true;
        this.nextRebuild = 0;
        this.client().catch((error: unknown) => this.ctx.logger.warn({ dependency: this.name, reason: describe(error) }, "rebuild failed"));
      }
    });
    try {
      await this.operation("warm-up", (client) => this.warmUp(client), this.ctx.settings.connectTimeout + 1);
    } catch (error) {
      this.ctx.logger.warn({ dependency: this.name, reason: describe(error) }, "dependency not reachable at start; will connect on first use");
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    const clients = [...this.retired, ...(this.current !== undefined ? [this.current] : [])];
    this.current = undefined;
    this.retired.clear();
    await Promise.all(clients.map((client) => this.closeQuietly(client)));
  }

  private async closeQuietly(client: C): Promise<void> {
    try {
      await withTimeout(this.ctx.settings.operationTimeout, this.closeClient(client), () => new Error("close timed out"));
    } catch (error) {
      this.ctx.logger.warn({ dependency: this.name, reason: describe(error) }, "closing a pool failed");
    }
  }

  /** A method, not the field: the pool can close while a build awaits. */
  private isClosed(): boolean {
    return this.closed;
  }

  get version(): number | undefined {
    return this.currentVersion;
  }

  /** The current client, built (or rebuilt) when needed, one build at a time. */
  async client(): Promise<C> {
    const current = this.current;
    if (current !== undefined && !this.needsRebuild(current)) return current;
    this.building ??= this.rebuild().finally(() => {
      this.building = undefined;
    });
    return this.building;
  }

  private needsRebuild(client: C): boolean {
    if (this.isDead(client)) return true;
    return this.rebuildWanted && performance.now() / 1000 >= this.nextRebuild;
  }

  private async rebuild(): Promise<C> {
    if (this.closed) throw new DependencyUnavailable(this.name, "the client is closed");
    const current = this.current;
    const secret = await this.ctx.secrets.get(this.secretPath);
    let fresh: C;
    try {
      fresh = await this.build(secret);
    } catch (error) {
      if (current === undefined || this.isDead(current)) throw error;
      this.nextRebuild = performance.now() / 1000 + REBUILD_RETRY;
      this.ctx.logger.warn({ dependency: this.name }, "rebuilding a pool failed; keeping the old one");
      return current;
    }
    if (this.isClosed()) {
      // Closed while this client was being built (a warm-up still running at shutdown).
      await this.closeQuietly(fresh);
      throw new DependencyUnavailable(this.name, "the client is closed");
    }
    const reason = current !== undefined && this.isDead(current) && secret.version === this.currentVersion ? "recovery" : "credentials";
    this.current = fresh;
    this.currentVersion = secret.version;
    this.rebuildWanted = false;
    if (current !== undefined) {
      this.rebuilds += 1;
      this.ctx.metrics?.poolRebuilds.inc({ pool: this.name, reason });
      this.ctx.logger.info({ dependency: this.name, reason }, "pool rebuilt");
      this.retire(current);
    }
    return fresh;
  }

  private retire(client: C): void {
    this.retired.add(client);
    const timer = setTimeout(() => {
      if (this.retired.delete(client)) void this.closeQuietly(client);
    }, this.ctx.settings.operationTimeout * 1000);
    timer.unref();
  }

  // -- operations -----------------------------------------------------------------------------

  private refused(): Promise<boolean> {
    const { host, port } = this.ctx.settings.endpoints[this.name as keyof Settings["endpoints"]];
    return tcpCheck(host, port, this.ctx.settings.connectTimeout).then((r) => r === "refused");
  }

  /** `work(client)` bounded by `timeout` (the operation timeout by default), errors translated
   *  to the error tree; a dependency known to be down is checked with a TCP connection first. */
  async operation<T>(what: string, work: (client: C) => Promise<T>, timeout = this.ctx.settings.operationTimeout): Promise<T> {
    let client: C | undefined;
    const unavailable = (cause?: unknown): DependencyUnavailable => {
      this.down = true;
      return new DependencyUnavailable(this.name, `${what}: connection refused`, { cause });
    };
    const run = async (): Promise<T> => {
      if (this.down && (await this.refused())) throw unavailable();
      client = await this.client();
      const result = await work(client);
      this.down = false;
      return result;
    };
    const timedOut = new DependencyTimeout(this.name, `${what} timed out after ${timeout}s`);
    try {
      return await withTimeout(timeout, run(), () => timedOut);
    } catch (error) {
      if (error === timedOut) {
        // A client that keeps retrying a stopped server (MongoDB's server selection) times out:
        // refused is an outage, not slowness.
        if (await this.refused()) throw unavailable(error);
        throw error;
      }
      if (error instanceof DependencyUnavailable) this.down = true;
      if (error instanceof DevStackError) throw error;
      if (this.isRejectedData(error)) throw new InvalidInput(`${this.name} cannot store this value`, { cause: error });
      this.afterError(client, error);
      this.down = true;
      throw new DependencyUnavailable(this.name, `${what}: ${describe(error)}`, { cause: error });
    }
  }

  private afterError(client: C | undefined, error: unknown): void {
    if (this.isAuthError(error)) {
      this.ctx.logger.warn({ dependency: this.name }, "authentication failed; re-reading the secret");
      this.ctx.secrets.refresh(this.secretPath, AUTH_REFRESH_MAX_AGE).catch(() => undefined);
    }
    if (client !== undefined) this.onConnectionError(client, error);
  }
}
