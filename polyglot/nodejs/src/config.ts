/**
 * Settings: the same DEVSTACK_* variables as the Python library (docs/client.md) and web layer,
 * read once from an environment, validated, frozen. Nothing else reads process.env.
 *
 * Vault credentials come from an AppRole only (role-id and secret-id, as values or files, or found
 * in a stack's state folder by AppRole name); there is no token fallback of any kind.
 */
import { existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";

import { ConfigurationError } from "./errors.js";

export const DEPENDENCIES = ["postgres", "mysql", "mongodb", "redis", "rabbitmq"] as const;
export type Dependency = (typeof DEPENDENCIES)[number];

/** The stack's base ports (stack/services.toml), before the offset. */
export const DEFAULT_PORTS = {
  vault: 8200,
  postgres: 5432,
  mysql: 3306,
  mongodb: 27017,
  redis: 6379,
  redis_tls: 6390,
  rabbitmq: 5672,
  rabbitmq_tls: 5671,
} as const;

/** This implementation's own ports (stack/services.toml), used when the variables are unset. */
export const DEFAULT_API_PORTS = { http: 8003, https: 8446 } as const;

export type Env = Readonly<Record<string, string | undefined>>;

export interface Settings {
  readonly stateDir: string | undefined;
  readonly approle: string | undefined;
  readonly portOffset: number;
  readonly host: string;
  readonly vaultAddr: string;
  readonly roleId: string | undefined;
  readonly roleIdFile: string | undefined;
  readonly secretId: string | undefined;
  readonly secretIdFile: string | undefined;
  readonly kvMount: string;
  readonly pkiMount: string;
  readonly vaultTimeout: number; // seconds, like every duration here
  readonly vaultStartTimeout: number;
  readonly tokenRenewFraction: number;
  readonly backoffInitial: number;
  readonly backoffMax: number;
  readonly secretTtl: number;
  readonly caFile: string | undefined;
  readonly endpoints: Readonly<Record<Dependency, { host: string; port: number; plainPort: number }>>;
  readonly connectTimeout: number;
  readonly operationTimeout: number;
  readonly healthTimeout: number;
  readonly poolMaxSize: number;
  readonly channelPoolSize: number;
  readonly cacheKeyPrefix: string;
  readonly api: ApiSettings;
}

export interface ApiSettings {
  readonly host: string;
  readonly httpPort: number;
  readonly httpsPort: number;
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  readonly corsOrigins: readonly string[];
  readonly rateLimit: number;
  readonly rateWindowSeconds: number;
  readonly bodyLimit: number;
  readonly logLevel: "debug" | "info" | "warn" | "error" | "fatal";
}

class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  text(name: string): string | undefined {
    const value = this.env[`DEVSTACK_${name}`];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  }

  number(name: string, fallback: number, min: number, max: number, integer = false): number {
    const raw = this.text(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
      this.problems.push(`DEVSTACK_${name}=${raw}: expected ${integer ? "an integer" : "a number"} in [${min}, ${max}]`);
      return fallback;
    }
    return value;
  }

  port(name: string): number | undefined {
    return this.text(name) === undefined ? undefined : this.number(name, 0, 1, 65535, true);
  }

  flag(name: string): boolean {
    const raw = this.text(name)?.toLowerCase();
    return raw !== undefined && ["1", "true", "yes", "on"].includes(raw);
  }
}

export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1" || host === "[::1]";
}

const ORIGIN = /^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^https?:\/\/\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/;
const LOG_LEVELS: Record<string, ApiSettings["logLevel"]> = {
  DEBUG: "debug",
  INFO: "info",
  WARNING: "warn",
  WARN: "warn",
  ERROR: "error",
  CRITICAL: "fatal",
};

function parseOrigins(raw: string | undefined, problems: string[]): string[] {
  if (raw === undefined) return [];
  let origins: unknown;
  if (raw.startsWith("[")) {
    try {
      origins = JSON.parse(raw);
    } catch {
      problems.push("DEVSTACK_API_CORS_ORIGINS: not a JSON list");
      return [];
    }
  } else {
    origins = raw.split(",").map((part) => part.trim()).filter((part) => part !== "");
  }
  if (!Array.isArray(origins) || !origins.every((o): o is string => typeof o === "string")) {
    problems.push("DEVSTACK_API_CORS_ORIGINS: expected origins");
    return [];
  }
  for (const origin of origins) {
    if (origin !== "*" && !ORIGIN.test(origin)) {
      problems.push(`DEVSTACK_API_CORS_ORIGINS: ${JSON.stringify(origin)} is not an origin (scheme://host[:port], or *)`);
    }
  }
  return origins;
}

/** Settings from an environment (process.env by default); throws ConfigurationError listing every problem. */
export function loadSettings(env: Env = process.env): Settings {
  const r = new Reader(env);
  const portOffset = r.number("PORT_OFFSET", 0, 0, 20000, true);
  const host = r.text("HOST") ?? "127.0.0.1";
  const stateDir = r.text("STATE_DIR");
  const approle = r.text("APPROLE");
  const roleId = r.text("VAULT_ROLE_ID");
  const roleIdFile = r.text("VAULT_ROLE_ID_FILE");
  const secretId = r.text("VAULT_SECRET_ID");
  const secretIdFile = r.text("VAULT_SECRET_ID_FILE");
  const roleGiven = roleId !== undefined || roleIdFile !== undefined;
  const secretGiven = secretId !== undefined || secretIdFile !== undefined;
  if (approle !== undefined && stateDir === undefined && !(roleGiven && secretGiven)) {
    r.problems.push("DEVSTACK_APPROLE needs DEVSTACK_STATE_DIR (its role-id and secret-id files)");
  }
  if (approle === undefined && !(roleGiven && secretGiven)) {
    r.problems.push(
      "no Vault credentials: set DEVSTACK_VAULT_ROLE_ID[_FILE] and DEVSTACK_VAULT_SECRET_ID[_FILE] " +
        "(or DEVSTACK_APPROLE with DEVSTACK_STATE_DIR); there is no token fallback",
    );
  }

  const vaultAddr = (r.text("VAULT_ADDR") ?? `http://${host}:${DEFAULT_PORTS.vault + portOffset}`).replace(/\/+$/, "");
  let vaultUrl: URL | undefined;
  try {
    vaultUrl = new URL(vaultAddr);
  } catch {
    r.problems.push(`DEVSTACK_VAULT_ADDR is not a URL: ${vaultAddr}`);
  }
  if (vaultUrl !== undefined) {
    if (vaultUrl.protocol !== "http:" && vaultUrl.protocol !== "https:") {
      r.problems.push(`DEVSTACK_VAULT_ADDR is not an http(s) URL: ${vaultAddr}`);
    } else if (vaultUrl.protocol === "http:" && !isLoopback(vaultUrl.hostname) && !r.flag("VAULT_ALLOW_INSECURE_HTTP")) {
      r.problems.push(
        "DEVSTACK_VAULT_ADDR is plain HTTP to a host that is not loopback: tokens would cross the network " +
          "in clear (use https, or set DEVSTACK_VAULT_ALLOW_INSECURE_HTTP)",
      );
    }
  }

  const endpoint = (dep: Dependency): { host: string; port: number; plainPort: number } => {
    const upper = dep.toUpperCase();
    const depHost = r.text(`${upper}_HOST`) ?? host;
    const plainPort = r.port(`${upper}_PORT`) ?? DEFAULT_PORTS[dep] + portOffset;
    let port = plainPort;
    if (dep === "redis" || dep === "rabbitmq") {
      const tlsBase = dep === "redis" ? DEFAULT_PORTS.redis_tls : DEFAULT_PORTS.rabbitmq_tls;
      port = r.port(`${upper}_TLS_PORT`) ?? tlsBase + portOffset;
    }
    return { host: depHost, port, plainPort };
  };
  const endpoints = {
    postgres: endpoint("postgres"),
    mysql: endpoint("mysql"),
    mongodb: endpoint("mongodb"),
    redis: endpoint("redis"),
    rabbitmq: endpoint("rabbitmq"),
  };

  const backoffInitial = r.number("BACKOFF_INITIAL", 0.5, 0.001, 60);
  const backoffMax = r.number("BACKOFF_MAX", 30, 0.001, 600);
  if (backoffInitial > backoffMax) r.problems.push("DEVSTACK_BACKOFF_INITIAL is larger than DEVSTACK_BACKOFF_MAX");

  const tlsCertFile = r.text("API_TLS_CERT_FILE");
  const tlsKeyFile = r.text("API_TLS_KEY_FILE");
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    r.problems.push("set both DEVSTACK_API_TLS_CERT_FILE and DEVSTACK_API_TLS_KEY_FILE");
  }
  for (const file of [tlsCertFile, tlsKeyFile]) {
    if (file !== undefined && !existsSync(file)) r.problems.push(`TLS file ${file} does not exist`);
  }
  const httpPort = r.port("API_HTTP_PORT") ?? DEFAULT_API_PORTS.http;
  const httpsPort = r.port("API_HTTPS_PORT") ?? DEFAULT_API_PORTS.https;
  if (httpPort === httpsPort) r.problems.push("DEVSTACK_API_HTTP_PORT and DEVSTACK_API_HTTPS_PORT must differ");
  const levelName = (r.text("API_LOG_LEVEL") ?? "INFO").toUpperCase();
  const logLevel = LOG_LEVELS[levelName];
  if (logLevel === undefined) r.problems.push("DEVSTACK_API_LOG_LEVEL is one of DEBUG, INFO, WARNING, ERROR, CRITICAL");

  const caFile = r.text("CA_FILE") ?? (stateDir !== undefined ? path.join(stateDir, "ca", "ca-chain.pem") : undefined);
  const settings: Settings = {
    stateDir,
    approle,
    portOffset,
    host,
    vaultAddr,
    roleId,
    roleIdFile,
    secretId,
    secretIdFile,
    kvMount: "secret",
    pkiMount: "pki_int",
    vaultTimeout: r.number("VAULT_TIMEOUT", 5, 0.001, 120),
    vaultStartTimeout: r.number("VAULT_START_TIMEOUT", 30, 0, 3600),
    tokenRenewFraction: r.number("TOKEN_RENEW_FRACTION", 2 / 3, 0.1, 0.95),
    backoffInitial,
    backoffMax,
    secretTtl: r.number("SECRET_TTL", 300, 0.001, 86400 * 365),
    caFile,
    endpoints,
    connectTimeout: r.number("CONNECT_TIMEOUT", 3, 0.001, 120),
    operationTimeout: r.number("OPERATION_TIMEOUT", 5, 0.001, 600),
    healthTimeout: r.number("HEALTH_TIMEOUT", 2, 0.001, 60),
    poolMaxSize: r.number("POOL_MAX_SIZE", 4, 1, 1000, true),
    channelPoolSize: r.number("CHANNEL_POOL_SIZE", 8, 1, 1000, true),
    cacheKeyPrefix: "cache:",
    api: {
      host: r.text("API_HOST") ?? "127.0.0.1",
      httpPort,
      httpsPort,
      tlsCertFile,
      tlsKeyFile,
      corsOrigins: parseOrigins(r.text("API_CORS_ORIGINS"), r.problems),
      rateLimit: r.number("API_RATE_LIMIT", 0, 0, 1e9, true),
      rateWindowSeconds: r.number("API_RATE_WINDOW_SECONDS", 60, 1, 86400, true),
      bodyLimit: r.number("API_BODY_LIMIT", 1_048_576, 1, 64 * 1_048_576, true),
      logLevel: logLevel ?? "info",
    },
  };
  if (r.problems.length > 0) throw new ConfigurationError(r.problems.join("; "));
  return Object.freeze(settings);
}

function readCredential(value: string | undefined, file: string | undefined, settings: Settings, name: string): string {
  if (value !== undefined) return value;
  let source = file;
  if (source === undefined) {
    if (settings.stateDir === undefined || settings.approle === undefined) {
      throw new ConfigurationError(`no AppRole ${name} configured`);
    }
    source = path.join(settings.stateDir, "approle", settings.approle, name);
  }
  let text: string;
  try {
    text = readFileSync(source, "utf8").trim();
  } catch {
    throw new ConfigurationError(`cannot read the AppRole ${name} file ${source}`);
  }
  if (text === "") throw new ConfigurationError(`the AppRole ${name} file ${source} is empty`);
  return text;
}

/** The role-id, read at each login (a file replaced on disk is picked up). */
export function readRoleId(settings: Settings): string {
  return readCredential(settings.roleId, settings.roleIdFile, settings, "role-id");
}

/** The secret-id, read at each login (a file replaced on disk is picked up). */
export function readSecretId(settings: Settings): string {
  return readCredential(settings.secretId, settings.secretIdFile, settings, "secret-id");
}
