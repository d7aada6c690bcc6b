/**
 * The Redis Cluster through ioredis's cluster client (it follows MOVED/ASK and reaches every
 * master) on the TLS ports, verified against the stack's CA; the cache and the cluster's own view.
 *
 * The offline queue is off: while no node answers, a command fails at once (503) instead of waiting
 * for a reconnection that may never come within the request; the client keeps reconnecting in the
 * background, and a client that gave up is rebuilt at the next use.
 */
import type { Cluster } from "ioredis";

import { DependencyUnavailable, InvalidInput, NotFound, quoted } from "../errors.js";
import type { KvSecret } from "../vault/client.js";
import { lazyModule, ManagedPool, secretText, tlsEnabled } from "./pool.js";

const driver = lazyModule(() => import("ioredis"));

export class RedisPool extends ManagedPool<Cluster> {
  readonly name = "redis" as const;

  protected async build(secret: KvSecret): Promise<Cluster> {
    const tls = tlsEnabled(secret);
    const endpoint = this.ctx.settings.endpoints.redis;
    const s = this.ctx.settings;
    const user = secretText(secret, "user");
    const { Cluster } = await driver();
    const cluster = new Cluster([{ host: endpoint.host, port: tls ? endpoint.port : endpoint.plainPort }], {
      lazyConnect: true,
      enableOfflineQueue: false,
      enableReadyCheck: true,
      slotsRefreshTimeout: s.connectTimeout * 1000,
      clusterRetryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
      redisOptions: {
        ...(user !== "" ? { username: user } : {}),
        password: secretText(secret, "password"),
        connectTimeout: s.connectTimeout * 1000,
        maxRetriesPerRequest: 0,
        ...(tls ? { tls: { ca: this.ctx.ca, minVersion: "TLSv1.2" as const } } : {}),
      },
    });
    // Errors are reported through each command's promise; without a listener an 'error' event
    // would end the process.
    cluster.on("error", () => undefined);
    try {
      await cluster.connect();
    } catch (error) {
      cluster.disconnect();
      throw error;
    }
    return cluster;
  }

  protected async warmUp(cluster: Cluster): Promise<void> {
    await Promise.all(cluster.nodes("master").map((node) => node.ping()));
  }

  protected async closeClient(cluster: Cluster): Promise<void> {
    try {
      await cluster.quit();
    } catch {
      cluster.disconnect();
    }
  }

  /** A client that gave up, or lost every node and waits for its own reconnection backoff (up to
   *  2 s): replaced at the next operation, which the pool only runs once the servers accept
   *  connections again, so health and the routes are back as soon as the cluster is. */
  protected override isDead(cluster: Cluster): boolean {
    return cluster.status === "end" || cluster.status === "close" || cluster.status === "reconnecting";
  }

  protected override isAuthError(error: unknown): boolean {
    const message = error instanceof Error ? error.message : "";
    return message.startsWith("WRONGPASS") || message.startsWith("NOAUTH");
  }
}

// -- the cache ------------------------------------------------------------------------------------

const CACHE_KEY = /^[A-Za-z0-9:_.-]{1,200}$/;
export const MAX_CACHE_TTL = 86400;
// The value (nil when missing) and the TTL in seconds (-1: none, -2: missing) of KEYS[1], atomically.
const GET_WITH_TTL = "return {redis.call('GET', KEYS[1]), redis.call('TTL', KEYS[1])}";

export interface CacheEntry {
  key: string;
  value: string;
  ttl_seconds: number | null;
}

export class CacheService {
  constructor(
    private readonly pool: RedisPool,
    readonly prefix = "cache:",
  ) {}

  redisKey(key: string): string {
    if (!CACHE_KEY.test(key) || key === "." || key === "..") {
      throw new InvalidInput("a cache key is 1-200 of A-Z a-z 0-9 : _ . - (not . or ..)");
    }
    return this.prefix + key;
  }

  async get(key: string): Promise<CacheEntry> {
    const name = this.redisKey(key);
    const answer = (await this.pool.operation("cache get", (cluster) => cluster.eval(GET_WITH_TTL, 1, name))) as [unknown, unknown];
    const [value, ttl] = answer;
    if (typeof value !== "string") throw new NotFound(`cache key ${quoted(key)} does not exist`);
    return { key, value, ttl_seconds: Number(ttl) >= 0 ? Number(ttl) : null };
  }

  /** Store `value`; `created` says whether the key was new. Without a TTL the key never expires. */
  async put(key: string, value: string, ttlSeconds?: number): Promise<{ entry: CacheEntry; created: boolean }> {
    const name = this.redisKey(key);
    if (ttlSeconds !== undefined && !(ttlSeconds >= 1 && ttlSeconds <= MAX_CACHE_TTL)) {
      throw new InvalidInput(`ttl_seconds must be between 1 and ${MAX_CACHE_TTL}`);
    }
    const args: (string | number)[] = ttlSeconds === undefined ? [name, value, "GET"] : [name, value, "EX", ttlSeconds, "GET"];
    const previous = await this.pool.operation("cache put", (cluster) => cluster.call("SET", ...args));
    return { entry: { key, value, ttl_seconds: ttlSeconds ?? null }, created: previous === null };
  }

  async delete(key: string): Promise<void> {
    const name = this.redisKey(key);
    const deleted = await this.pool.operation("cache delete", (cluster) => cluster.del(name));
    if (deleted === 0) throw new NotFound(`cache key ${quoted(key)} does not exist`);
  }
}

// -- the rate limit ---------------------------------------------------------------------------

export const RATE_LIMIT_PREFIX = "devstack:ratelimit:";
const HIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return count
`;

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  windowSeconds: number;
  remaining: number;
  resetSeconds: number;
}

/** The window `now` (seconds since the epoch) falls in, and the whole seconds (>= 1) until it ends. */
export function windowPosition(now: number, windowSeconds: number): { index: number; reset: number } {
  const index = Math.floor(now / windowSeconds);
  return { index, reset: Math.max(1, Math.ceil((index + 1) * windowSeconds - now)) };
}

/**
 * A fixed window per client counted in the cluster, with the Python apps' keys and script
 * (`devstack:ratelimit:<client>:<window index>`), so every implementation shares one budget.
 */
export class RedisRateLimiter {
  constructor(
    private readonly pool: RedisPool,
    readonly limit: number,
    readonly windowSeconds = 60,
    private readonly clock: () => number = () => Date.now() / 1000,
  ) {}

  async hit(client: string): Promise<RateLimitDecision> {
    const { index, reset } = windowPosition(this.clock(), this.windowSeconds);
    const key = `${RATE_LIMIT_PREFIX}${client}:${index}`;
    const count = Number(await this.pool.operation("rate limit", (cluster) => cluster.eval(HIT_SCRIPT, 1, key, this.windowSeconds + 1)));
    return {
      allowed: count <= this.limit,
      limit: this.limit,
      windowSeconds: this.windowSeconds,
      remaining: Math.max(0, this.limit - count),
      resetSeconds: reset,
    };
  }
}

// -- the cluster's own view -------------------------------------------------------------------------

export interface SlotRange {
  start: number;
  end: number;
}

export interface RedisNode {
  id: string;
  address: string;
  role: "master" | "replica";
  master_id: string | null;
  connected: boolean;
  slots: SlotRange[];
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** CLUSTER NODES text: `<id> <ip:port@bus[,host]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...` */
export function parseClusterNodes(raw: string): RedisNode[] {
  const nodes = new Map<string, RedisNode>();
  for (const line of raw.trim().split("\n")) {
    const parts = line.trim().split(/\s+/);
    if (parts.length < 8) continue;
    const [id = "", addr = "", flagText = "", master = "-", , , , link = ""] = parts;
    const address = addr.split("@", 1)[0] ?? addr;
    const flags = flagText.split(",").filter((f) => f !== "");
    const failing = flags.includes("fail") || flags.includes("fail?");
    const slots = parts
      .slice(8)
      .filter((spec) => !spec.startsWith("["))
      .map((spec) => {
        const [start = "0", end = start] = spec.split("-");
        return { start: Number(start), end: Number(end) };
      })
      .sort((a, b) => a.start - b.start);
    nodes.set(address, {
      id,
      address,
      role: flags.includes("master") ? "master" : "replica",
      master_id: master === "-" ? null : master,
      connected: link === "connected" && !failing,
      slots,
    });
  }
  return [...nodes.values()].sort((a, b) => byText(a.address, b.address));
}

const CLUSTER_INFO_FIELDS = [
  "cluster_slots_assigned",
  "cluster_slots_ok",
  "cluster_slots_pfail",
  "cluster_slots_fail",
  "cluster_known_nodes",
  "cluster_size",
  "cluster_current_epoch",
] as const;

export function parseInfo(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of raw.split(/\r?\n/)) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.indexOf(":");
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

function int(value: string | undefined): number {
  const parsed = Number.parseInt(value ?? "0", 10);
  return Number.isFinite(parsed) ? parsed : 0;
}

export class ClusterService {
  constructor(private readonly pool: RedisPool) {}

  async nodes(): Promise<RedisNode[]> {
    const raw = await this.pool.operation("cluster nodes", (cluster) => cluster.cluster("NODES"));
    return parseClusterNodes(String(raw));
  }

  async slots(): Promise<{ ranges: { start: number; end: number; master: string; replicas: string[] }[]; coverage: { slots_assigned: number; all_covered: boolean } }> {
    const nodes = await this.nodes();
    const ids = new Set(nodes.map((n) => n.id));
    const replicas = new Map<string, string[]>();
    for (const node of nodes) {
      if (node.role === "replica" && node.master_id !== null && ids.has(node.master_id)) {
        replicas.set(node.master_id, [...(replicas.get(node.master_id) ?? []), node.address]);
      }
    }
    const ranges = nodes
      .filter((n) => n.role === "master")
      .flatMap((n) => n.slots.map((r) => ({ start: r.start, end: r.end, master: n.address, replicas: [...(replicas.get(n.id) ?? [])].sort(byText) })))
      .sort((a, b) => a.start - b.start);
    const assigned = ranges.reduce((sum, r) => sum + r.end - r.start + 1, 0);
    return { ranges, coverage: { slots_assigned: assigned, all_covered: assigned === 16384 } };
  }

  async info(): Promise<Record<string, string | number>> {
    const raw = await this.pool.operation("cluster info", (cluster) => cluster.cluster("INFO"));
    const info = parseInfo(raw);
    const out: Record<string, string | number> = { cluster_state: info.cluster_state ?? "fail" };
    for (const field of CLUSTER_INFO_FIELDS) out[field] = int(info[field]);
    return out;
  }

  /** INFO of a node the cluster lists; any other name is 404 without a connection attempt. */
  async nodeInfo(node: string): Promise<Record<string, string | number>> {
    const listed = new Set((await this.nodes()).map((n) => n.address));
    if (!listed.has(node)) throw new NotFound(`the cluster has no node ${quoted(node)}`);
    return this.pool.operation("node info", async (cluster) => {
      const target = cluster.nodes("all").find((n) => `${n.options.host ?? ""}:${n.options.port ?? ""}` === node);
      if (target === undefined) throw new DependencyUnavailable("redis", `node ${node} is not connected`);
      const info = parseInfo(await target.info());
      const keys = await target.dbsize();
      const role = info.role ?? "master";
      return {
        node,
        role: role === "slave" || role === "replica" ? "replica" : "master",
        redis_version: info.redis_version ?? "",
        uptime_seconds: int(info.uptime_in_seconds),
        connected_clients: int(info.connected_clients),
        used_memory_bytes: int(info.used_memory),
        keys,
      };
    });
  }

  /** Health: the cluster's state and a PING to every master. */
  async probe(timeout?: number): Promise<{ state: string; masters: number }> {
    return this.pool.operation("health", async (cluster) => {
      const info = parseInfo(await cluster.cluster("INFO"));
      const masters = cluster.nodes("master");
      await Promise.all(masters.map((n) => n.ping()));
      return { state: info.cluster_state ?? "fail", masters: masters.length };
    }, timeout);
  }
}
