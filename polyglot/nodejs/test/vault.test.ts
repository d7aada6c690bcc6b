/** The token lifecycle and the secret cache, against a fake Vault on a local port. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { loadSettings, type Settings } from "../src/config.js";
import { ConfigurationError, DependencyUnavailable } from "../src/errors.js";
import { VaultClient } from "../src/vault/client.js";
import { backoffDelay, planRefresh } from "../src/vault/schedule.js";
import { SecretStore } from "../src/vault/secrets.js";

describe("the token schedule", () => {
  const lease = { ttl: 30, loginTtl: 30, renewable: true, refreshedAt: 100 };
  it("renews at 2/3 of the lease", () => {
    assert.deepEqual(planRefresh(lease, 101, 2 / 3), { action: "renew", at: 120 });
  });
  it("logs in again when renewal is capped, refused or the token expired", () => {
    assert.equal(planRefresh({ ...lease, ttl: 10 }, 101, 2 / 3).action, "login", "capped by the max TTL");
    assert.equal(planRefresh({ ...lease, renewable: false }, 101, 2 / 3).action, "login");
    assert.deepEqual(planRefresh(lease, 131, 2 / 3), { action: "login", at: 131 });
    assert.equal(planRefresh({ ...lease, ttl: 0 }, 101, 2 / 3).action, "none");
  });
  it("backs off exponentially with jitter, within bounds", () => {
    assert.equal(backoffDelay(1, 0.5, 30, () => 0), 0.25);
    assert.equal(backoffDelay(1, 0.5, 30, () => 1), 0.5);
    assert.equal(backoffDelay(4, 0.5, 30, () => 1), 4);
    assert.equal(backoffDelay(20, 0.5, 30, () => 1), 30);
  });
});

/** A fake Vault: AppRole login, renew-self, lookup-self, revoke-self and a KV v2 read. */
class FakeVault {
  server = http.createServer((req, res) => {
    this.handle(req, res).catch(() => res.destroy());
  });
  url = "";
  ttl = 60;
  maxTtl = 3600;
  up = true;
  logins = 0;
  renewals = 0;
  reads = 0;
  revoked = 0;
  secretVersion = 1;
  tokens = new Map<string, number>(); // token -> issued at (ms)
  loginDelay = 0;
  policies = ["app"];
  healthChecks = 0;
  /** When set, the next secret read waits for `released` (after calling `held`) before Vault
   *  looks at its token. */
  readGate: { held: () => void; released: Promise<void> } | undefined;
  sealed = false;

  async start(): Promise<void> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private valid(token: string | undefined): boolean {
    const issued = token === undefined ? undefined : this.tokens.get(token);
    return issued !== undefined && Date.now() - issued < this.maxTtl * 1000;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    req.resume();
    await once(req, "end");
    const gate = this.readGate;
    if (gate !== undefined && req.url === "/v1/secret/data/postgres") {
      this.readGate = undefined;
      gate.held();
      await gate.released;
    }
    if (!this.up) {
      req.socket.destroy();
      return;
    }
    const token = req.headers["x-vault-token"] as string | undefined;
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    if (req.url?.startsWith("/v1/sys/health") === true) {
      this.healthChecks += 1;
      await new Promise((r) => setTimeout(r, 20));
      send(this.sealed ? 503 : 200, { initialized: true, sealed: this.sealed });
    } else if (req.url === "/v1/auth/approle/login") {
      if (this.loginDelay > 0) await new Promise((r) => setTimeout(r, this.loginDelay));
      this.logins += 1;
      const issued = `hvs.fake-token-${this.logins}-${"x".repeat(20)}`;
      this.tokens.set(issued, Date.now());
      send(200, { auth: { client_token: issued, lease_duration: this.ttl, renewable: true, token_policies: this.policies } });
    } else if (!this.valid(token)) {
      send(403, { errors: ["permission denied"] });
    } else if (req.url === "/v1/auth/token/renew-self") {
      this.renewals += 1;
      send(200, { auth: { client_token: token, lease_duration: this.ttl, renewable: true } });
    } else if (req.url === "/v1/auth/token/lookup-self") {
      send(200, { data: { ttl: this.ttl } });
    } else if (req.url === "/v1/auth/token/revoke-self") {
      this.revoked += 1;
      this.tokens.delete(token ?? "");
      res.writeHead(204).end();
    } else if (req.url === "/v1/secret/data/postgres") {
      this.reads += 1;
      send(200, { data: { data: { user: "app", password: "pw-from-vault" }, metadata: { version: this.secretVersion } } });
    } else {
      send(404, { errors: [] });
    }
  }

  revokeAll(): void {
    this.tokens.clear();
  }
}

function settingsFor(vault: FakeVault, extra: Record<string, string> = {}): Settings {
  const dir = mkdtempSync(path.join(tmpdir(), "nodejs-vault-"));
  writeFileSync(path.join(dir, "role-id"), "role");
  writeFileSync(path.join(dir, "secret-id"), "secret");
  return loadSettings({
    DEVSTACK_VAULT_ADDR: vault.url,
    DEVSTACK_VAULT_ROLE_ID_FILE: path.join(dir, "role-id"),
    DEVSTACK_VAULT_SECRET_ID_FILE: path.join(dir, "secret-id"),
    DEVSTACK_BACKOFF_INITIAL: "0.02",
    DEVSTACK_BACKOFF_MAX: "0.1",
    DEVSTACK_VAULT_TIMEOUT: "1",
    ...extra,
  });
}

describe("the Vault client against a fake Vault", () => {
  const vault = new FakeVault();
  before(() => vault.start());
  after(() => vault.server.close());

  it("logs in, renews at 2/3 of a short TTL, logs in again at the max TTL, and never fails a read", async () => {
    vault.ttl = 1;
    vault.maxTtl = 2.5;
    const client = new VaultClient(settingsFor(vault));
    const logins = vault.logins;
    await client.start();
    try {
      const started = Date.now();
      // Several max TTLs: every read succeeds through renewals and new logins.
      while (Date.now() - started < 6000) {
        const secret = await client.kvRead("postgres");
        assert.equal(secret?.data.user, "app");
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(client.renewals >= 2, `renewals ${client.renewals}`);
      assert.ok(vault.logins - logins >= 2, `logins ${vault.logins - logins}`);
    } finally {
      await client.close();
      vault.ttl = 60;
      vault.maxTtl = 3600;
    }
  });

  it("replaces a revoked token once, however many requests find it refused", async () => {
    const client = new VaultClient(settingsFor(vault));
    await client.start();
    try {
      const before = vault.logins;
      vault.revokeAll();
      vault.loginDelay = 50;
      const reads = await Promise.all(Array.from({ length: 10 }, () => client.kvRead("postgres")));
      assert.ok(reads.every((r) => r?.data.password === "pw-from-vault"));
      assert.equal(vault.logins - before, 1, "one login for ten refused requests");
    } finally {
      vault.loginDelay = 0;
      await client.close();
    }
  });

  it("asks again when a login replaced the token while the call was in flight", async () => {
    const client = new VaultClient(settingsFor(vault));
    await client.start();
    let release = (): void => undefined;
    try {
      const before = vault.logins;
      const inFlight = new Promise<void>((held) => {
        vault.readGate = { held, released: new Promise<void>((r) => (release = r)) };
      });
      const first = client.kvRead("postgres");
      await inFlight;
      vault.revokeAll(); // the token dies while the first read is in flight
      assert.equal(await client.kvRead("other"), undefined, "a 403, a check, a new login");
      assert.equal(vault.logins - before, 1);
      release();
      assert.equal((await first)?.data.password, "pw-from-vault");
      assert.equal(vault.logins - before, 1, "the in-flight read needed no login of its own");
    } finally {
      release();
      vault.readGate = undefined;
      await client.close();
    }
  });

  it("refuses a root token", async () => {
    vault.policies = ["root"];
    try {
      await assert.rejects(new VaultClient(settingsFor(vault, { DEVSTACK_VAULT_START_TIMEOUT: "0" })).start(), ConfigurationError);
    } finally {
      vault.policies = ["app"];
    }
  });

  it("asks sys/health at each check, one request for concurrent checks", async () => {
    const client = new VaultClient(settingsFor(vault));
    await client.start();
    try {
      const before = vault.healthChecks;
      const answers = await Promise.all(Array.from({ length: 5 }, () => client.checkHealth(1)));
      assert.deepEqual(answers, ["ok", "ok", "ok", "ok", "ok"]);
      assert.equal(vault.healthChecks - before, 1);
      vault.sealed = true;
      assert.equal(await client.checkHealth(1), "sealed");
      vault.sealed = false;
      vault.up = false;
      assert.equal(await client.checkHealth(1), "unreachable", "a Vault that died is seen by the very next check");
      assert.equal(client.status().reachable, false);
      vault.up = true;
      assert.equal(await client.checkHealth(1), "ok");
    } finally {
      vault.up = true;
      vault.sealed = false;
      await client.close();
    }
  });

  it("reports Vault unreachable, then recovers by itself", async () => {
    const client = new VaultClient(settingsFor(vault));
    await client.start();
    try {
      vault.up = false;
      await assert.rejects(client.kvRead("postgres"), DependencyUnavailable);
      assert.equal(client.status().reachable, false);
      vault.up = true;
      await client.kvRead("postgres");
      assert.equal(client.status().reachable, true);
    } finally {
      vault.up = true;
      await client.close();
    }
    assert.ok(vault.revoked >= 1, "the token is revoked at close");
  });
});

describe("the secret cache", () => {
  it("serves hits without Vault, one read for concurrent misses, stale values through an outage", async () => {
    let now = 0;
    let reads = 0;
    let up = true;
    let version = 1;
    const store = new SecretStore(
      async (p) => {
        reads += 1;
        await new Promise((r) => setTimeout(r, 10));
        if (!up) throw new DependencyUnavailable("vault", "unreachable");
        return { path: p, data: { password: `v${version}` }, version };
      },
      10,
      { clock: () => now },
    );
    const seen: number[] = [];
    store.subscribe("postgres", (s) => seen.push(s.version));
    await Promise.all(Array.from({ length: 5 }, () => store.get("postgres")));
    assert.equal(reads, 1, "single flight");
    await store.get("postgres");
    assert.equal(reads, 1, "a hit");
    assert.equal(store.states()[0]?.stale, false);

    now = 11;
    up = false;
    assert.equal((await store.get("postgres")).data.password, "v1", "stale value served");
    assert.equal(store.states()[0]?.stale, true);

    up = true;
    version = 2;
    now = 12;
    await store.tick();
    assert.equal((await store.get("postgres")).data.password, "v2");
    assert.deepEqual(seen, [2], "subscribers hear of a new version");
    assert.equal(store.states()[0]?.stale, false);
  });
});
