/** Pure logic: problems, masking and log redaction, request ids, settings, timestamps, the
 *  cluster's text, the rate-limit window. */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";

import { loadSettings, readSecretId } from "../src/config.js";
import { ConfigurationError, DependencyTimeout, DependencyUnavailable, InvalidInput, NotFound, quoted, VaultError } from "../src/errors.js";
import { saneRequestId } from "../src/http/middleware.js";
import { instanceOf, problemBody, problemFor, sentence } from "../src/http/problems.js";
import { isMaskedKey, MASK, Redactor } from "../src/redaction.js";
import { canonicalUuid } from "../src/stores/models.js";
import { parseClusterNodes, parseInfo, windowPosition } from "../src/stores/redis.js";
import { formatInstant, parseSqlTimestamp, sqlDatetime } from "../src/stores/time.js";
import { captureLogger } from "./helpers.js";

describe("problem documents", () => {
  it("have exactly the contract's members", () => {
    assert.deepEqual(problemBody(404, "Gone.", "/x", "rid"), {
      type: "about:blank",
      title: "Not Found",
      status: 404,
      detail: "Gone.",
      instance: "/x",
      request_id: "rid",
    });
    const errors = [{ location: "body" as const, field: "/name", detail: "required" }];
    assert.deepEqual(problemBody(422, "d", "/x", "r", { errors }).errors, errors);
    assert.equal(problemBody(404, "d", "/x", "r", { errors }).errors, undefined, "errors on 422 only");
    assert.equal(problemBody(503, "d", "/x", "r", { dependency: "redis" }).dependency, "redis");
    assert.equal(problemBody(404, "d", "/x", "r", { dependency: "redis" }).dependency, undefined, "dependency on 503/504 only");
    assert.equal(problemBody(503, "d", "/x", "r", { dependency: "nope" }).dependency, undefined);
    assert.equal(problemBody(413, "d", "/x", "r").title, "Content Too Large");
    assert.equal(problemBody(422, "d", "/x", "r").title, "Unprocessable Content");
  });

  it("map the error tree to statuses, with no raw text", () => {
    const down = problemFor(new DependencyUnavailable("postgres", "connection refused at 10.0.0.1"));
    assert.deepEqual([down.status, down.detail, down.options.headers], [503, "postgres is unavailable.", { "Retry-After": "5" }]);
    assert.equal(problemFor(new VaultError("GET", "secret/data/x", 503, ["sealed"])).status, 503);
    assert.deepEqual([problemFor(new DependencyTimeout("redis", "x")).status, problemFor(new DependencyTimeout("redis", "x")).detail], [504, "redis did not answer in time."]);
    assert.equal(problemFor(new NotFound("no such thing")).detail, "No such thing.");
    assert.equal(problemFor(new InvalidInput("bad")).status, 422);
    const bug = problemFor(new Error("password=hunter2"));
    assert.deepEqual([bug.status, bug.detail, bug.unexpected], [500, "The server could not complete the request.", true]);
  });

  it("write instance as a valid URI reference, the decoded path encoded again", () => {
    assert.equal(instanceOf("/examples/cache/bad%20key"), "/examples/cache/bad%20key");
    assert.equal(instanceOf("/examples/cache/%41b"), "/examples/cache/Ab");
    assert.equal(instanceOf("/examples/cache/a:b@c"), "/examples/cache/a:b@c");
    assert.equal(instanceOf("/x/é"), "/x/%C3%A9");
    assert.equal(instanceOf("/x/%ff"), "/x/%EF%BF%BD", "invalid UTF-8 replaced");
    assert.equal(sentence("there is no dependency named 'x'"), "There is no dependency named 'x'.");
  });

  it("quote names as Python's repr() does, so details read the same everywhere", () => {
    assert.equal(quoted("parity.sequence"), "'parity.sequence'");
    assert.equal(quoted("it's"), `"it's"`);
    assert.equal(quoted(`it's "x"`), `'it\\'s "x"'`);
    assert.equal(quoted("a\nb\u0001é"), "'a\\nb\\x01é'");
  });
});

describe("request ids", () => {
  it("are honoured when sane", () => {
    assert.equal(saneRequestId("a.b_c:d+e/f=g-h"), "a.b_c:d+e/f=g-h");
    assert.equal(saneRequestId("x".repeat(128)), "x".repeat(128));
    for (const odd of ["", "x".repeat(129), "has space", 'quo"te', "semi;colon", "é", undefined, ["a", "b"]]) {
      assert.equal(saneRequestId(odd), undefined, String(odd));
    }
  });
});

describe("masking and redaction", () => {
  it("masks every key the contract names, by substring, case-insensitively", () => {
    for (const key of ["password", "dbPassword", "apitoken", "API_KEY", "role_id", "Private", "dsn", "x_signature", "cookie", "authority"]) {
      assert.ok(isMaskedKey(key), key);
    }
    for (const key of ["user", "host", "port", "database", "vhost", "tls_enabled"]) assert.ok(!isMaskedKey(key), key);
  });

  it("keeps secrets out of logs: keys, patterns and every value read", () => {
    const redactor = new Redactor();
    redactor.addSecretData({ password: "correct-horse-battery", user: "app" });
    redactor.add("short");
    const { logger, capture } = captureLogger(redactor);
    logger.info(
      {
        password: "anything",
        token: "s.abcdefghijklmnopqrstuvwx",
        url: "amqps://user:pw-in-url@host/vhost",
        text: "it said correct-horse-battery twice: correct-horse-battery",
        pem: "-----BEGIN PRIVATE KEY-----\nMIIabc\n-----END PRIVATE KEY-----",
        nested: { client_token: "hvs.zzzzzzzzzzzzzzzzzzzzzzzzz", user: "app" },
      },
      "login with password=letmein and hvs.ABCDEFGHIJKLMNOPQRSTUVWX",
    );
    const text = capture.text();
    for (const secret of ["anything", "abcdefghijklmnop", "pw-in-url", "correct-horse", "MIIabc", "zzzzzzzz", "letmein", "ABCDEFGHIJKLMNOP"]) {
      assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    }
    assert.ok(text.includes(MASK));
    assert.equal(capture.lines[0]?.nested && (capture.lines[0].nested as { user: string }).user, "app");
  });
});

describe("settings", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "nodejs-settings-"));
  writeFileSync(path.join(dir, "role-id"), "role\n");
  writeFileSync(path.join(dir, "secret-id"), "first\n");
  const base = { DEVSTACK_VAULT_ROLE_ID_FILE: path.join(dir, "role-id"), DEVSTACK_VAULT_SECRET_ID_FILE: path.join(dir, "secret-id") };

  it("moves every default port by the offset; a port set is used as it is", () => {
    const s = loadSettings({ ...base, DEVSTACK_PORT_OFFSET: "100", DEVSTACK_MYSQL_PORT: "4000", DEVSTACK_REDIS_TLS_PORT: "7000" });
    assert.equal(s.vaultAddr, "http://127.0.0.1:8300");
    assert.deepEqual(s.endpoints.postgres, { host: "127.0.0.1", port: 5532, plainPort: 5532 });
    assert.equal(s.endpoints.mysql.port, 4000);
    assert.equal(s.endpoints.mongodb.port, 27117);
    assert.equal(s.endpoints.redis.port, 7000);
    assert.equal(s.endpoints.rabbitmq.port, 5771);
    assert.deepEqual([s.api.httpPort, s.api.httpsPort], [8003, 8446]);
    assert.deepEqual([s.secretTtl, s.operationTimeout, s.healthTimeout, s.connectTimeout, s.vaultTimeout], [300, 5, 2, 3, 5]);
    assert.ok(Math.abs(s.tokenRenewFraction - 2 / 3) < 1e-9);
  });

  it("refuses to start without AppRole credentials, or with plain HTTP off loopback", () => {
    assert.throws(() => loadSettings({}), ConfigurationError);
    assert.throws(() => loadSettings({ ...base, DEVSTACK_VAULT_ADDR: "http://vault.example:8200" }), /plain HTTP/);
    assert.doesNotThrow(() => loadSettings({ ...base, DEVSTACK_VAULT_ADDR: "https://vault.example:8200" }));
    assert.throws(() => loadSettings({ ...base, DEVSTACK_OPERATION_TIMEOUT: "soon" }), /OPERATION_TIMEOUT/);
    assert.throws(() => loadSettings({ ...base, DEVSTACK_API_CORS_ORIGINS: "http://a.example/path" }), /not an origin/);
    assert.deepEqual(loadSettings({ ...base, DEVSTACK_API_CORS_ORIGINS: "http://a.example, https://b.example:8443" }).api.corsOrigins, [
      "http://a.example",
      "https://b.example:8443",
    ]);
  });

  it("reads the secret-id file again at each login", () => {
    const s = loadSettings(base);
    assert.equal(readSecretId(s), "first");
    writeFileSync(path.join(dir, "secret-id"), "second\n");
    assert.equal(readSecretId(s), "second");
  });
});

describe("timestamps", () => {
  it("render as the Python apps render them", () => {
    assert.equal(formatInstant(parseSqlTimestamp("2026-11-28 06:00:00.123+00")), "2026-11-28T06:00:00.123000Z");
    assert.equal(formatInstant(parseSqlTimestamp("2026-11-28 06:00:00+00")), "2026-11-28T06:00:00Z");
    assert.equal(formatInstant(parseSqlTimestamp("2026-11-28 06:00:00.123456")), "2026-11-28T06:00:00.123456Z");
    assert.equal(formatInstant(parseSqlTimestamp("2026-11-28 08:00:00.5+02")), "2026-11-28T06:00:00.500000Z");
    assert.equal(sqlDatetime({ ms: Date.UTC(2026, 10, 28, 6, 0, 0, 7), micro: 0 }), "2026-11-28 06:00:00.007000");
  });

  it("item ids accept the forms Python's uuid.UUID accepts", () => {
    const id = "7d3f0e5c-8a61-4c1e-9b5e-2f4a6c8d0b12";
    assert.equal(canonicalUuid(id.toUpperCase()), id);
    assert.equal(canonicalUuid(`{${id}}`), id);
    assert.equal(canonicalUuid(`urn:uuid:${id}`), id);
    assert.equal(canonicalUuid(id.replaceAll("-", "")), id);
    assert.equal(canonicalUuid("parity-missing"), undefined);
  });
});

describe("the Redis cluster's own words", () => {
  it("parses CLUSTER NODES, sorted by address", () => {
    const text = [
      "b".repeat(40) + " 127.0.0.1:6391@16391,host master - 0 1 2 connected 5461-10922",
      "a".repeat(40) + " 127.0.0.1:6390@16390 myself,master - 0 0 1 connected 0-5460 [93->-" + "c".repeat(40) + "]",
      "c".repeat(40) + " 127.0.0.1:6392@16392 slave,fail " + "a".repeat(40) + " 0 1 3 disconnected",
    ].join("\n");
    const nodes = parseClusterNodes(text);
    assert.deepEqual(nodes.map((n) => n.address), ["127.0.0.1:6390", "127.0.0.1:6391", "127.0.0.1:6392"]);
    assert.deepEqual(nodes[0], { id: "a".repeat(40), address: "127.0.0.1:6390", role: "master", master_id: null, connected: true, slots: [{ start: 0, end: 5460 }] });
    assert.deepEqual([nodes[2]?.role, nodes[2]?.master_id, nodes[2]?.connected], ["replica", "a".repeat(40), false]);
    assert.equal(parseInfo("# Server\r\nredis_version:7.0.15\r\nrole:master\r\n").redis_version, "7.0.15");
  });

  it("counts requests in epoch-aligned windows", () => {
    assert.deepEqual(windowPosition(120.2, 60), { index: 2, reset: 60 });
    assert.deepEqual(windowPosition(179.5, 60), { index: 2, reset: 1 });
    assert.deepEqual(windowPosition(180, 60), { index: 3, reset: 60 });
  });
});

describe("messages a consumer can be given", () => {
  it("are UTF-8 JSON objects within the rules; anything else is rejected", async () => {
    const { deliverableObject } = await import("../src/http/jsonrules.js");
    const deep = "[".repeat(65) + "]".repeat(65);
    assert.deepEqual(deliverableObject(Buffer.from('{"n": 1}')), { n: 1 });
    for (const body of ['{"bad": "\\ud800"}', `{"deep": ${deep}}`, '{"huge": 1e400}', "not json at all", "[1, 2, 3]"]) {
      assert.equal(deliverableObject(Buffer.from(body)), undefined, body);
    }
    assert.equal(deliverableObject(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe9, 0x22, 0x7d])), undefined, "not UTF-8");
  });
});

describe("start-up", () => {
  it("loads no database driver until a pool is built, so /health answers before they load", async () => {
    await import("../src/stack.js");
    await import("../src/app.js");
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    for (const driver of ["pg", "mysql2", "mongodb", "ioredis", "amqplib"]) {
      assert.ok(!loaded.some((file) => file.includes(`/node_modules/${driver}/`)), `${driver} is loaded at start`);
    }
    assert.ok(loaded.some((file) => file.includes("/node_modules/express/")), "the check sees CommonJS modules");
  });
});
