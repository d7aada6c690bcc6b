/**
 * A Vault (OpenBao) client that keeps its AppRole token alive, over node:http(s).
 *
 * Why node:http rather than the global fetch: fetch cannot be given a CA file without undici's
 * Agent, which Node 20 does not expose; an HTTPS Vault must be verified against the stack's CA.
 * Six endpoints are used (login, renew-self, lookup-self, revoke-self, KV v2 read, CA chain), a
 * few lines each; tests run them against a fake Vault on a local port.
 *
 * Lifecycle (the schedule is schedule.ts): AppRole login; renewal at 2/3 of each lease; a new login
 * when renewal is capped, refused or the token expired; one refresh in flight (a shared promise
 * and a generation number), also when a request finds its token refused (checked with
 * lookup-self first); jittered exponential backoff while Vault is down. Never a root token.
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";

import { readRoleId, readSecretId, type Settings } from "../config.js";
import { ConfigurationError, DependencyError, DependencyTimeout, DependencyUnavailable, VaultError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { redactor as defaultRedactor, type Redactor } from "../redaction.js";
import { backoffDelay, expiresAt, monotonic, planRefresh, type TokenLease } from "./schedule.js";

export interface KvSecret {
  readonly path: string;
  readonly data: Readonly<Record<string, unknown>>;
  readonly version: number;
}

export type VaultHealth = "ok" | "sealed" | "timeout" | "unreachable";

export interface VaultStatus {
  readonly reachable: boolean;
  readonly authenticated: boolean;
  readonly tokenTtl: number | undefined;
  readonly lastError: string | undefined;
  readonly downFor: number | undefined;
}

interface Answer {
  readonly status: number;
  readonly text: string;
}

type Json = Record<string, unknown>;

function asObject(value: unknown): Json {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : {};
}

export interface VaultClientOptions {
  readonly metrics?: Metrics | undefined;
  readonly logger?: Logger | undefined;
  readonly redactor?: Redactor;
  readonly clock?: () => number;
}

export class VaultClient {
  private token: string | undefined;
  private lease: TokenLease | undefined;
  private generationNo = 0;
  private refreshing: Promise<void> | undefined;
  private forceLogin = false;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private closed = false;
  private reachable = true;
  private lastError: string | undefined;
  private downSince: number | undefined;
  private readonly agent: http.Agent;
  private readonly base: URL;
  private readonly clock: () => number;
  private readonly redactor: Redactor;
  private readonly ca: string | undefined;
  /** Counters for tests and benchmarks. */
  logins = 0;
  renewals = 0;
  requests = 0;

  constructor(
    private readonly settings: Settings,
    private readonly options: VaultClientOptions = {},
  ) {
    this.base = new URL(settings.vaultAddr);
    this.clock = options.clock ?? monotonic;
    this.redactor = options.redactor ?? defaultRedactor;
    const secure = this.base.protocol === "https:";
    this.ca = secure && settings.caFile !== undefined ? readCaQuietly(settings.caFile) : undefined;
    this.agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 4 }) : new http.Agent({ keepAlive: true, maxSockets: 4 });
  }

  // -- lifecycle --------------------------------------------------------------------------

  /** Log in (retrying while Vault is unreachable, up to vaultStartTimeout), then keep the token alive. */
  async start(): Promise<void> {
    const deadline = this.clock() + this.settings.vaultStartTimeout;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.refresh("login", this.generationNo);
        break;
      } catch (error) {
        if (error instanceof VaultError && (error.httpStatus === 400 || error.httpStatus === 403)) {
          throw new ConfigurationError("Vault refused the AppRole login", { cause: error });
        }
        if (!(error instanceof DependencyError)) throw error;
        const delay = this.backoff(attempt);
        if (this.clock() + delay > deadline) throw error;
        this.options.logger?.warn({ retry_in: Math.round(delay * 100) / 100 }, "vault not ready, retrying login");
        await sleep(delay);
      }
    }
    void this.keepAlive();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.wake?.();
    if (this.token !== undefined) {
      try {
        await this.send("revoke", "POST", "auth/token/revoke-self", undefined, { auth: true, timeout: 1 });
      } catch {
        // best effort: the token then lives until its TTL
      }
      this.token = undefined;
    }
    this.agent.destroy();
  }

  private isClosed(): boolean {
    return this.closed;
  }

  get generation(): number {
    return this.generationNo;
  }

  tokenTtl(): number | undefined {
    if (this.lease === undefined) return undefined;
    const remaining = expiresAt(this.lease) - this.clock();
    return Number.isFinite(remaining) ? Math.max(0, remaining) : undefined;
  }

  status(): VaultStatus {
    const ttl = this.tokenTtl();
    return {
      reachable: this.reachable,
      authenticated: this.token !== undefined && (ttl === undefined || ttl > 0),
      tokenTtl: ttl,
      lastError: this.lastError,
      downFor: this.downSince === undefined ? undefined : this.clock() - this.downSince,
    };
  }

  // -- the token ----------------------------------------------------------------------------

  /** Renew or log in, once: concurrent callers share the refresh in flight; a caller that saw an
   *  older generation finds a login already done. */
  private async refresh(action: "renew" | "login", seenGeneration: number): Promise<void> {
    while (this.refreshing !== undefined) {
      try {
        await this.refreshing;
      } catch {
        // the other caller's failure is theirs to report; decide again below
      }
    }
    if (action === "login" && this.generationNo !== seenGeneration) return;
    const run = action === "renew" ? this.renew() : this.login();
    this.refreshing = run;
    try {
      await run;
    } finally {
      this.refreshing = undefined;
    }
  }

  private async login(): Promise<void> {
    const roleId = readRoleId(this.settings);
    const secretId = readSecretId(this.settings);
    this.redactor.add(roleId, secretId);
    let result: Json;
    try {
      result = await this.send("login", "POST", "auth/approle/login", { role_id: roleId, secret_id: secretId }, { auth: false });
    } catch (error) {
      this.options.metrics?.vaultLogins.inc({ result: "failure" });
      throw error;
    }
    const auth = asObject(result.auth);
    const token = auth.client_token;
    if (typeof token !== "string" || token === "") throw new VaultError("POST", "auth/approle/login", 200, ["no token in the answer"]);
    const policies = Array.isArray(auth.token_policies) ? auth.token_policies : [];
    if (policies.includes("root")) throw new ConfigurationError("refusing a root token: the AppRole must not grant the root policy");
    this.token = token;
    this.redactor.add(token);
    const ttl = Number(auth.lease_duration ?? 0);
    this.lease = { ttl, loginTtl: ttl, renewable: auth.renewable === true, refreshedAt: this.clock() };
    this.generationNo += 1;
    this.forceLogin = false;
    this.logins += 1;
    this.options.metrics?.vaultLogins.inc({ result: "success" });
    this.options.logger?.info({ ttl }, "vault login");
  }

  private async renew(): Promise<void> {
    let result: Json;
    try {
      result = await this.send("renew", "POST", "auth/token/renew-self", {}, { auth: true });
    } catch (error) {
      this.options.metrics?.vaultRenewals.inc({ result: "failure" });
      throw error;
    }
    const auth = asObject(result.auth);
    this.lease = {
      ttl: Number(auth.lease_duration ?? 0),
      loginTtl: this.lease?.loginTtl ?? 0,
      renewable: auth.renewable === true,
      refreshedAt: this.clock(),
    };
    this.renewals += 1;
    this.options.metrics?.vaultRenewals.inc({ result: "success" });
    this.options.logger?.debug({ ttl: this.lease.ttl }, "vault token renewed");
  }

  private async keepAlive(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      const lease = this.lease;
      if (lease === undefined) return;
      const now = this.clock();
      const plan = planRefresh(lease, now, this.settings.tokenRenewFraction);
      if (plan.action === "none") return;
      const action = this.forceLogin ? "login" : plan.action;
      const delay = failures > 0 ? this.backoff(failures) : plan.at - now;
      if (delay > 0) await this.pause(delay);
      if (this.isClosed()) return;
      try {
        await this.refresh(action, this.generationNo);
        failures = 0;
      } catch (error) {
        failures += 1;
        if (error instanceof VaultError && action === "renew") this.forceLogin = true;
        this.options.logger?.warn(
          { action, attempt: failures, error: error instanceof Error ? error.message : String(error) },
          "vault token refresh failed",
        );
      }
    }
  }

  private pause(seconds: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, Math.min(seconds, 2 ** 31 / 1000 - 1) * 1000);
      this.timer.unref();
    });
  }

  private backoff(attempt: number): number {
    return backoffDelay(attempt, this.settings.backoffInitial, this.settings.backoffMax);
  }

  // -- requests -----------------------------------------------------------------------------

  /** An authenticated call; a refused token is checked, replaced and the call retried once. A
   *  refusal of a token that a login replaced while the call (or its check) was in flight was the
   *  old token's: the call is simply made again with the new one. */
  private async call(operation: string, method: string, path: string, body?: Json, missingOk = false): Promise<Json | undefined> {
    const generation = this.generationNo;
    try {
      return await this.send(operation, method, path, body, { auth: true, missingOk });
    } catch (error) {
      if (!(error instanceof VaultError) || error.httpStatus !== 403) throw error;
      const tokenIsFine = this.generationNo === generation && !(await this.tokenIsInvalid());
      if (tokenIsFine && this.generationNo === generation) throw error; // a genuine permission error
    }
    await this.refresh("login", generation); // nothing to do when a login already replaced it
    return this.send(operation, method, path, body, { auth: true, missingOk });
  }

  private async tokenIsInvalid(): Promise<boolean> {
    try {
      await this.send("lookup", "GET", "auth/token/lookup-self", undefined, { auth: true });
    } catch (error) {
      return error instanceof VaultError && error.httpStatus === 403;
    }
    return false;
  }

  private async send(
    operation: string,
    method: string,
    path: string,
    body: Json | undefined,
    opts: { auth: boolean; missingOk: true; timeout?: number },
  ): Promise<Json | undefined>;
  private async send(
    operation: string,
    method: string,
    path: string,
    body: Json | undefined,
    opts: { auth: boolean; missingOk?: boolean; timeout?: number },
  ): Promise<Json>;
  private async send(
    operation: string,
    method: string,
    path: string,
    body: Json | undefined,
    opts: { auth: boolean; missingOk?: boolean; timeout?: number },
  ): Promise<Json | undefined> {
    const headers: Record<string, string> = {};
    if (opts.auth && this.token !== undefined) headers["X-Vault-Token"] = this.token;
    const answer = await this.request(operation, method, `/v1/${path}`, body, headers, opts.timeout);
    if (answer.status >= 500) {
      const reason = answer.status === 503 ? "sealed or not ready" : "server error";
      this.unreachable(operation, `${answer.status} ${reason}`);
      throw new VaultError(method, path, answer.status, [reason]);
    }
    this.contact();
    if (answer.status === 404 && opts.missingOk === true) return undefined;
    if (answer.status >= 400) {
      this.options.metrics?.vaultFailures.inc({ operation });
      let errors: string[] = [`HTTP ${answer.status}`];
      try {
        const parsed = asObject(JSON.parse(answer.text));
        if (Array.isArray(parsed.errors)) errors = parsed.errors.map(String);
      } catch {
        // keep the status alone
      }
      throw new VaultError(method, path, answer.status, errors);
    }
    if (answer.text.trim() === "") return {};
    try {
      return asObject(JSON.parse(answer.text));
    } catch (error) {
      throw new DependencyUnavailable("vault", `${operation}: the answer is not JSON`, { cause: error });
    }
  }

  private request(
    operation: string,
    method: string,
    path: string,
    body: Json | undefined,
    headers: Record<string, string>,
    timeout?: number,
    counted = true,
  ): Promise<Answer> {
    if (counted) this.requests += 1;
    this.options.metrics?.vaultRequests.inc({ operation });
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const seconds = timeout ?? this.settings.vaultTimeout;
    const secure = this.base.protocol === "https:";
    const ca = this.ca;
    return new Promise<Answer>((resolve, reject) => {
      const options: https.RequestOptions = {
        method,
        host: this.base.hostname,
        port: this.base.port === "" ? (secure ? 443 : 80) : Number(this.base.port),
        path,
        agent: this.agent,
        headers: { ...headers, ...(payload ? { "content-type": "application/json", "content-length": String(payload.length) } : {}) },
        ...(ca !== undefined ? { ca } : {}),
      };
      const req = (secure ? https : http).request(options, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
        });
        res.on("error", (error) => {
          clearTimeout(timer);
          this.unreachable(operation, error.name);
          reject(new DependencyUnavailable("vault", `${operation}: unreachable`, { cause: error }));
        });
      });
      const timer = setTimeout(() => {
        req.destroy(new Error("timeout"));
        this.unreachable(operation, "timed out");
        reject(new DependencyTimeout("vault", `${operation} timed out`));
      }, seconds * 1000);
      req.on("error", (error) => {
        clearTimeout(timer);
        this.unreachable(operation, (error as { code?: string }).code ?? error.name);
        reject(new DependencyUnavailable("vault", `${operation}: unreachable`, { cause: error }));
      });
      req.end(payload);
    });
  }

  private contact(): void {
    this.reachable = true;
    this.lastError = undefined;
    this.downSince = undefined;
  }

  private unreachable(operation: string, reason: string): void {
    if (this.reachable) this.downSince = this.clock();
    this.reachable = false;
    this.lastError = reason;
    this.options.metrics?.vaultFailures.inc({ operation });
  }

  // -- health -----------------------------------------------------------------------------------

  private healthInFlight: Promise<VaultHealth> | undefined;

  /** Vault's own health (`sys/health`, no token, not audited), within `seconds`; concurrent
   *  checks share one request. Answers "ok", "sealed" (503/501), "timeout" or "unreachable". */
  checkHealth(seconds: number): Promise<VaultHealth> {
    this.healthInFlight ??= this.request("health", "GET", "/v1/sys/health?standbyok=true&perfstandbyok=true", undefined, {}, seconds, false)
      .then(
        (answer): VaultHealth => {
          if (answer.status === 503 || answer.status === 501) {
            this.unreachable("health", `${answer.status} sealed or not ready`);
            return "sealed";
          }
          if (answer.status >= 500) {
            this.unreachable("health", `${answer.status} server error`);
            return "unreachable";
          }
          this.contact();
          return "ok";
        },
        (error: unknown): VaultHealth => (error instanceof DependencyTimeout ? "timeout" : "unreachable"),
      )
      .finally(() => {
        this.healthInFlight = undefined;
      });
    return this.healthInFlight;
  }

  // -- what the application uses ------------------------------------------------------------

  /** The latest version of a KV v2 secret, or undefined when it does not exist. */
  async kvRead(path: string): Promise<KvSecret | undefined> {
    const result = await this.call("kv_read", "GET", `${this.settings.kvMount}/data/${path}`, undefined, true);
    if (result === undefined) return undefined;
    const envelope = asObject(result.data);
    if (Object.keys(envelope).length === 0) return undefined;
    const data = asObject(envelope.data);
    const metadata = asObject(envelope.metadata);
    this.redactor.addSecretData(data);
    return { path, data, version: Number(metadata.version ?? 0) };
  }

  /** The PEM chain of the issuing CA (intermediate, then root); no token needed. */
  async caChain(): Promise<string> {
    const path = `/v1/${this.settings.pkiMount}/ca_chain`;
    const answer = await this.request("ca_chain", "GET", path, undefined, {});
    if (answer.status >= 400 || !answer.text.includes("BEGIN CERTIFICATE")) {
      throw new VaultError("GET", path, answer.status, ["no CA chain in the answer"]);
    }
    this.contact();
    return `${answer.text.trim()}\n`;
  }
}

function readCaQuietly(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

export function sleep(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}
