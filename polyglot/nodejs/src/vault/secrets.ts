/**
 * KV secrets cached with a TTL, refreshed in the background, kept through a Vault outage
 * (libs/devstack_client/secretstore.py):
 * - get(path) answers from the cache while the value is younger than the TTL; otherwise it reads
 *   Vault, one read per path at a time however many callers wait;
 * - a background loop re-reads every cached secret once it is half its TTL old, so requests keep
 *   hitting the cache: at steady state a request causes no Vault call;
 * - when Vault cannot be reached the last good value is served and marked stale (health says so);
 * - subscribers of a path hear of a new version, so pools rebuild with new credentials.
 */
import { DependencyError, NotFound } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { KvSecret } from "./client.js";
import { monotonic } from "./schedule.js";

export type Fetch = (path: string) => Promise<KvSecret | undefined>;
export type Subscriber = (secret: KvSecret) => void;

interface Entry {
  secret: KvSecret;
  fetchedAt: number;
  failed: boolean;
  error: string | undefined;
}

export interface SecretState {
  readonly path: string;
  readonly version: number;
  readonly stale: boolean;
}

export class SecretStore {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<KvSecret | undefined>>();
  private readonly subscribers = new Map<string, Subscriber[]>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  hits = 0;
  misses = 0;
  staleServed = 0;

  constructor(
    private readonly fetch: Fetch,
    readonly ttl: number,
    private readonly options: { metrics?: Metrics | undefined; logger?: Logger | undefined; clock?: () => number } = {},
  ) {}

  private now(): number {
    return (this.options.clock ?? monotonic)();
  }

  async get(path: string): Promise<KvSecret> {
    const entry = this.entries.get(path);
    if (entry !== undefined && this.now() - entry.fetchedAt < this.ttl) {
      this.count("hit");
      return entry.secret;
    }
    try {
      const secret = await this.refresh(path);
      this.count("miss");
      return secret;
    } catch (error) {
      if (entry === undefined || !(error instanceof DependencyError)) throw error;
      this.count("stale");
      return entry.secret;
    }
  }

  peek(path: string): KvSecret | undefined {
    return this.entries.get(path)?.secret;
  }

  /** Read Vault now (unless the cached copy is younger than maxAge), single flight per path. */
  async refresh(path: string, maxAge = 0): Promise<KvSecret> {
    const entry = this.entries.get(path);
    if (entry !== undefined && maxAge > 0 && this.now() - entry.fetchedAt < maxAge) return entry.secret;
    let pending = this.inflight.get(path);
    if (pending === undefined) {
      pending = this.fetch(path).then(
        (result) => {
          this.inflight.delete(path);
          if (result !== undefined) this.store(path, result);
          return result;
        },
        (error: unknown) => {
          this.inflight.delete(path);
          const current = this.entries.get(path);
          if (error instanceof DependencyError && current !== undefined) {
            current.failed = true;
            current.error = error.message;
          }
          throw error;
        },
      );
      this.inflight.set(path, pending);
    }
    const result = await pending;
    if (result === undefined) throw new NotFound(`secret ${JSON.stringify(path)} does not exist`);
    return result;
  }

  private store(path: string, secret: KvSecret): void {
    const previous = this.entries.get(path);
    this.entries.set(path, { secret, fetchedAt: this.now(), failed: false, error: undefined });
    if (previous !== undefined && previous.secret.version !== secret.version) {
      this.options.logger?.info({ path, old_version: previous.secret.version, new_version: secret.version }, "secret version changed");
      this.options.metrics?.secretChanges.inc({ path });
      for (const subscriber of this.subscribers.get(path) ?? []) {
        try {
          subscriber(secret);
        } catch (error) {
          this.options.logger?.error({ path, err: error }, "secret subscriber failed");
        }
      }
    }
  }

  private count(result: "hit" | "miss" | "stale"): void {
    if (result === "hit") this.hits += 1;
    else if (result === "miss") this.misses += 1;
    else this.staleServed += 1;
    this.options.metrics?.secretCache.inc({ result });
  }

  /** Call `callback(secret)` whenever a new version of `path` is read; returns the unsubscribe. */
  subscribe(path: string, callback: Subscriber): () => void {
    const list = this.subscribers.get(path) ?? [];
    list.push(callback);
    this.subscribers.set(path, list);
    return () => {
      const index = list.indexOf(callback);
      if (index >= 0) list.splice(index, 1);
    };
  }

  states(): SecretState[] {
    const now = this.now();
    return [...this.entries.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([path, e]) => ({ path, version: e.secret.version, stale: e.failed || now - e.fetchedAt >= this.ttl }));
  }

  get size(): number {
    return this.entries.size;
  }

  // -- background refresh ---------------------------------------------------------------------

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }

  private nextDue(): number {
    const now = this.now();
    const half = this.ttl / 2;
    let due = now + half;
    for (const e of this.entries.values()) due = Math.min(due, e.failed ? now + Math.min(half, 1) : e.fetchedAt + half);
    return Math.max(0.05, due - now);
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => void this.tick().finally(() => this.schedule()), this.nextDue() * 1000);
    this.timer.unref();
  }

  /** One pass of the refresher: every secret at least half its TTL old, or failed, is re-read. */
  async tick(): Promise<void> {
    const now = this.now();
    const due = [...this.entries.entries()].filter(([, e]) => e.failed || now - e.fetchedAt >= this.ttl / 2).map(([p]) => p);
    for (const path of due) {
      try {
        await this.refresh(path);
      } catch (error) {
        if (error instanceof DependencyError) {
          for (const other of due) {
            const entry = this.entries.get(other);
            if (entry !== undefined) {
              entry.failed = true;
              entry.error = error.message;
            }
          }
          this.options.logger?.warn({ error: error.message }, "secret refresh failed; serving cached values");
          break;
        }
        const entry = this.entries.get(path);
        if (error instanceof NotFound) {
          this.options.logger?.warn({ path }, "a cached secret was deleted from Vault; keeping it");
          if (entry !== undefined) entry.fetchedAt = now;
        } else {
          this.options.logger?.error({ path, err: error }, "secret refresh failed unexpectedly");
          if (entry !== undefined) entry.failed = true;
        }
      }
    }
  }
}
