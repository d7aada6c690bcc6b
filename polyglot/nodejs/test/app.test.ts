/** Routes with fakes: request ids, the body check order, validation, the error tree as problems,
 *  405 with Allow, metrics by template, and a handler failure that cannot escape. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { DependencyTimeout, DependencyUnavailable } from "../src/errors.js";
import type { Probe } from "../src/health.js";
import { fakeStack, raw, serve, type FakeStack, type Running } from "./helpers.js";

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const JSON_TYPE = { "content-type": "application/json" };

function problem(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

describe("the app around a fake stack", () => {
  let app: Running;
  let stack: FakeStack;

  before(async () => {
    stack = fakeStack({
      items: (backend) => {
        if (backend === "mysql") {
          return {
            backend,
            query: () => Promise.reject(new DependencyUnavailable("mysql", "connection refused")),
            create: () => Promise.reject(new DependencyTimeout("mysql", "create timed out")),
            get: () => Promise.reject(new Error("a bug with a secret s3cret-value inside")),
            list: () => Promise.reject(new TypeError("boom")),
            delete: () => Promise.resolve(),
          };
        }
        return stack.repos.get(backend)!;
      },
    });
    app = await serve(stack);
  });
  after(() => app.close());

  it("serves the service document", async () => {
    const res = await fetch(`${app.url}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type")?.split(";")[0], "application/json");
    assert.deepEqual(await res.json(), {
      name: "devstack-core",
      implementation: "nodejs",
      version: "1.0.0",
      links: { self: "/", health: "/health", health_all: "/health/all", metrics: "/metrics" },
    });
  });

  it("echoes a sane request id and replaces an odd one", async () => {
    for (const sent of ["abc-123", "a.b_c:d+e/f=g-h", "x".repeat(128)]) {
      const res = await fetch(`${app.url}/health`, { headers: { "X-Request-ID": sent } });
      assert.equal(res.headers.get("x-request-id"), sent);
    }
    for (const sent of ["has space", "x".repeat(129), "semi;colon"]) {
      const res = await fetch(`${app.url}/examples/cache/missing`, { headers: { "X-Request-ID": sent } });
      const id = res.headers.get("x-request-id") ?? "";
      assert.match(id, UUID4);
      assert.equal(problem(await res.text()).request_id, id);
      assert.ok(!app.capture.text().includes(sent), "a refused id is never logged");
    }
    await (await fetch(`${app.url}/examples/postgres/query`, { headers: { "X-Request-ID": "logged-id-1" } })).text();
    await new Promise((resolve) => setImmediate(resolve));
    const line = app.capture.lines.find((l) => l.request_id === "logged-id-1" && l.event === "request");
    assert.equal(line?.path, "/examples/postgres/query");
    assert.equal(line.status, 200);
  });

  it("answers an unknown path 404 and a method the path lacks 405 with Allow", async () => {
    const missing = await raw(app.url, "GET", "/nope");
    assert.equal(missing.status, 404);
    assert.equal(missing.headers["content-type"], "application/problem+json; charset=utf-8");
    assert.deepEqual(
      { ...problem(missing.text), request_id: "<id>" },
      { type: "about:blank", title: "Not Found", status: 404, detail: "No resource exists at this path.", instance: "/nope", request_id: "<id>" },
    );
    const patch = await raw(app.url, "PATCH", "/examples/postgres/items");
    assert.equal(patch.status, 405);
    assert.equal(patch.headers.allow, "GET, HEAD, POST");
    assert.equal(problem(patch.text).title, "Method Not Allowed");
    const head = await raw(app.url, "HEAD", "/health");
    assert.equal(head.status, 200, "HEAD is served wherever GET is");
    assert.equal(head.text, "");
    assert.equal(head.headers["content-length"], String(JSON.stringify({ status: "healthy" }).length));
    assert.equal((await raw(app.url, "DELETE", "/")).headers.allow, "GET, HEAD");
    assert.equal((await raw(app.url, "PATCH", "/examples/postgres/items/x")).headers.allow, "DELETE, GET, HEAD");
    const undecodable = await raw(app.url, "GET", "/examples/cache/a%ED%A0%80b");
    assert.equal(undecodable.status, 404, "a path that is not UTF-8 names nothing");
    assert.equal(problem(undecodable.text).status, 404);
    assert.equal((await raw(app.url, "GET", "/HEALTH")).status, 404, "paths are case-sensitive");
  });

  it("checks a body in the contract's order: 413, 415, 400, 422", async () => {
    const big = Buffer.alloc(1_048_577, 0x20);
    const path = "/examples/postgres/items";
    assert.equal((await raw(app.url, "POST", path, big, JSON_TYPE)).status, 413);
    assert.equal((await raw(app.url, "POST", path, big, { "content-type": "text/plain" })).status, 413, "413 before 415");
    assert.equal((await raw(app.url, "POST", path, '{"name":"x"}', { "content-type": "text/plain" })).status, 415);
    assert.equal((await raw(app.url, "POST", path, '{"name":"x"}')).status, 415, "no Content-Type");
    assert.equal((await raw(app.url, "POST", path, "{not json", { "content-type": "text/plain" })).status, 415, "415 before 400");
    assert.equal((await raw(app.url, "POST", path, '{"name": ', JSON_TYPE)).status, 400);
    assert.equal((await raw(app.url, "POST", path, "", JSON_TYPE)).status, 400);
    assert.equal((await raw(app.url, "POST", path, "NaN", JSON_TYPE)).status, 400, "NaN is not JSON");
    assert.equal((await raw(app.url, "POST", path, Buffer.from([0x7b, 0xff, 0x7d]), JSON_TYPE)).status, 400, "invalid UTF-8");
    assert.equal((await raw(app.url, "POST", path, "[]", JSON_TYPE)).status, 422);
    const created = await raw(app.url, "POST", path, '{"name":"widget","quantity":3.0}', { "content-type": "application/json; charset=utf-8" });
    assert.equal(created.status, 201);
    assert.equal(created.headers.location, `${path}/${String(problem(created.text).id)}`);
    assert.equal(problem(created.text).quantity, 3);
  });

  it("refuses JSON that nothing after the parser can carry, first violation only", async () => {
    const path = "/examples/messaging/queues/q/messages";
    const cases: [string, string][] = [
      [`{"a":${"[".repeat(65)}${"]".repeat(65)}}`, ""],
      ["[".repeat(100_000) + "]".repeat(100_000), ""],
      ['{"a":"x","text":"a\\ud800b"}', "/text"],
      ['{"list":[1,"\\udc00"]}', "/list/1"],
      ['{"n":1e400,"t":"\\ud800"}', "/n"],
      ['{"\\ud800":1}', ""],
      ['{"o":{"\\udfff":1}}', "/o"],
    ];
    for (const [body, field] of cases) {
      const res = await raw(app.url, "POST", path, body, JSON_TYPE);
      assert.equal(res.status, 422, `${body.slice(0, 40)}: ${res.text}`);
      assert.deepEqual((problem(res.text).errors as { field: string }[]).map((e) => e.field), [field]);
    }
    // Nesting is counted before the syntax: 422, not 400; brackets inside strings do not count.
    assert.equal((await raw(app.url, "POST", path, "[".repeat(70), JSON_TYPE)).status, 422);
    assert.equal((await raw(app.url, "POST", path, JSON.stringify({ s: "[".repeat(70) }), JSON_TYPE)).status, 202);
    assert.equal((await raw(app.url, "POST", path, '{"pair":"\\ud83d\\ude00"}', JSON_TYPE)).status, 202, "a valid pair is one character");
  });

  it("measures a chunked body while reading it", async () => {
    const res = await fetch(`${app.url}/examples/postgres/items`, {
      method: "POST",
      headers: JSON_TYPE,
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 20; i++) controller.enqueue(new Uint8Array(60_000).fill(0x20));
          controller.close();
        },
      }),
      duplex: "half",
    });
    assert.equal(res.status, 413);
  });

  it("reports every invalid member at its own location", async () => {
    const cases: [string, string, string, string[]][] = [
      ["POST", "/examples/postgres/items", "{}", ["body /name"]],
      ["POST", "/examples/postgres/items", '{"name":"","colour":"red"}', ["body /name", "body /colour"]],
      ["POST", "/examples/postgres/items", '{"name":"n","quantity":-1}', ["body /quantity"]],
      ["POST", "/examples/postgres/items", '{"name":"n","quantity":2147483648}', ["body /quantity"]],
      ["POST", "/examples/postgres/items", '{"name":"n","quantity":1.5}', ["body /quantity"]],
      ["POST", "/examples/postgres/items", '{"name":"n","quantity":"3"}', ["body /quantity"]],
      ["POST", "/examples/postgres/items", '{"name":"n","quantity":true}', ["body /quantity"]],
      ["POST", "/examples/postgres/items", `{"name":"${"é".repeat(101)}"}`, ["body /name"]],
      ["POST", "/examples/postgres/items", '{"name":"a\\u0000b"}', ["body /name"]],
      ["POST", "/examples/postgres/items", "null", ["body "]],
      ["PUT", "/examples/cache/a*b", '{"value":1}', ["path key", "body /value"]],
      ["PUT", "/examples/cache/k", '{"value":"v","ttl_seconds":0}', ["body /ttl_seconds"]],
      ["PUT", "/examples/cache/k", '{"value":"v","ttl_seconds":null}', ["body /ttl_seconds"]],
      ["PUT", "/examples/cache/k", '{"value":"v","a/b~":1}', ["body /a~1b~0"]],
      ["POST", "/examples/messaging/queues/amq.x/messages", '{"a":1}', ["path queue"]],
      ["POST", "/examples/messaging/queues/q/messages", '"x"', ["body "]],
    ];
    for (const [method, path, body, expected] of cases) {
      const res = await raw(app.url, method, path, body, JSON_TYPE);
      assert.equal(res.status, 422, `${method} ${path} ${body}: ${res.text}`);
      const errors = problem(res.text).errors as { location: string; field: string; detail: string }[];
      assert.deepEqual(errors.map((e) => `${e.location} ${e.field}`).sort(), [...expected].sort(), `${path} ${body}`);
      assert.ok(errors.every((e) => e.detail.length > 0));
    }
    // Names are 1 to 100 code points, not UTF-16 units.
    const emoji = await raw(app.url, "POST", "/examples/postgres/items", JSON.stringify({ name: "😀".repeat(100) }), JSON_TYPE);
    assert.equal(emoji.status, 201);
    const withTtl = await raw(app.url, "PUT", "/examples/cache/k", '{"value":"v","ttl_seconds":86400}', JSON_TYPE);
    assert.equal(withTtl.status, 201);
    assert.deepEqual(stack.cacheCalls.at(-1), ["k", "v", 86400]);
  });

  it("validates parameters", async () => {
    for (const [query, status] of [["limit=0", 422], ["limit=101", 422], ["limit=ten", 422], ["limit=-1", 422], ["limit=1.0", 200], ["limit=1_0", 200], ["limit=1&limit=0", 422]] as const) {
      const res = await raw(app.url, "GET", `/examples/postgres/items?${query}`);
      assert.equal(res.status, status, query);
      if (status === 422) assert.deepEqual((problem(res.text).errors as { field: string }[]).map((e) => e.field), ["limit"]);
    }
    for (const key of ["bad%20key", "a*b", "k".repeat(201), "a%2Fb"]) {
      assert.equal((await raw(app.url, "GET", `/examples/cache/${key}`)).status, 422, key);
    }
    assert.equal((await raw(app.url, "GET", "/examples/cache/a..b")).status, 404);
    const spaced = await raw(app.url, "GET", "/examples/cache/bad%20key");
    assert.equal(problem(spaced.text).instance, "/examples/cache/bad%20key");
  });

  it("answers a dependency's failure 503 with Retry-After, a timeout 504, never 500", async () => {
    const down = await raw(app.url, "GET", "/examples/mysql/query");
    assert.equal(down.status, 503);
    assert.equal(down.headers["retry-after"], "5");
    assert.deepEqual({ ...problem(down.text), request_id: "<id>" }, {
      type: "about:blank",
      title: "Service Unavailable",
      status: 503,
      detail: "mysql is unavailable.",
      instance: "/examples/mysql/query",
      request_id: "<id>",
      dependency: "mysql",
    });
    const slow = await raw(app.url, "POST", "/examples/mysql/items", '{"name":"n"}', JSON_TYPE);
    assert.equal(slow.status, 504);
    assert.equal(problem(slow.text).dependency, "mysql");
  });

  it("turns an unexpected error into a 500 problem, logged with the request id, without its text", async () => {
    const res = await raw(app.url, "GET", "/examples/mysql/items/any", undefined, { "X-Request-ID": "trace-500" });
    assert.equal(res.status, 500);
    const body = problem(res.text);
    assert.equal(body.detail, "The server could not complete the request.");
    assert.equal(body.request_id, "trace-500");
    assert.ok(!res.text.includes("bug") && !res.text.includes("s3cret"));
    const logged = app.capture.lines.find((l) => l.event === "unhandled error");
    assert.ok(logged, app.capture.text());
    assert.equal(logged.request_id, "trace-500");
    // A rejected TypeError too; and the process is still serving afterwards.
    assert.equal((await raw(app.url, "GET", "/examples/mysql/items")).status, 500);
    assert.equal((await raw(app.url, "GET", "/health")).status, 200);
  });

  it("masks secret values", async () => {
    const res = await fetch(`${app.url}/examples/vault/secret/postgres`);
    assert.deepEqual(await res.json(), {
      service: "postgres",
      path: "secret/postgres",
      version: 3,
      data: { user: "app", password: "********", port: "5432", tls_enabled: "true" },
      masked_keys: ["password"],
    });
    const key = await fetch(`${app.url}/examples/vault/secret/postgres/password`);
    assert.deepEqual(await key.json(), { service: "postgres", key: "password", value: "********", masked: true });
    for (const path of ["/examples/vault/secret/admin", "/examples/vault/secret/postgres/nokey", "/examples/vault/secret/postgres/constructor"]) {
      assert.equal((await raw(app.url, "GET", path)).status, 404, path);
    }
  });

  it("labels metrics by route template, never by raw path", async () => {
    await raw(app.url, "GET", "/examples/cache/metrics-probe-key");
    await raw(app.url, "GET", "/no/such/path");
    const res = await fetch(`${app.url}/metrics`);
    assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    assert.match(text, /# TYPE devstack_http_requests_total counter/);
    assert.match(text, /# TYPE devstack_http_request_duration_seconds histogram/);
    assert.match(text, /devstack_http_requests_total\{method="GET",route="\/examples\/cache\/\{key\}",status="404"\} \d/);
    assert.match(text, /route="<unmatched>"/);
    assert.ok(!text.includes("metrics-probe-key"));
  });
});

describe("health", () => {
  it("answers 503 with the report and Retry-After when a check fails, 404 for an unknown service", async () => {
    const probes = new Map<string, Probe>([
      ["vault", () => Promise.resolve({ status: "degraded", error: "unavailable" })],
      ["postgres", () => Promise.reject(new DependencyUnavailable("postgres", "refused"))],
      ["redis", () => new Promise(() => undefined)],
      ["mysql", () => Promise.resolve(undefined)],
    ]);
    const app = await serve(fakeStack({}, probes));
    try {
      const all = await fetch(`${app.url}/health/all`);
      assert.equal(all.status, 503);
      assert.equal(all.headers.get("retry-after"), "5");
      const report = (await all.json()) as { status: string; checks: Record<string, { status: string; error: string | null }> };
      assert.equal(report.status, "unhealthy");
      assert.deepEqual(
        Object.fromEntries(Object.entries(report.checks).map(([k, v]) => [k, [v.status, v.error]])),
        { vault: ["degraded", "unavailable"], postgres: ["unhealthy", "unavailable"], redis: ["unhealthy", "timeout"], mysql: ["healthy", null] },
      );
      const one = await fetch(`${app.url}/health/mysql`);
      assert.equal(one.status, 200);
      assert.deepEqual(Object.keys(((await one.json()) as { checks: object }).checks), ["mysql"]);
      assert.equal((await fetch(`${app.url}/health/Postgres`)).status, 404);
      assert.equal((await fetch(`${app.url}/health`)).status, 200);
    } finally {
      await app.close();
    }
  });
});

describe("CORS", () => {
  it("answers preflights for configured origins only", async () => {
    const app = await serve(fakeStack(), { corsOrigins: ["http://allowed.example"] });
    try {
      const ok = await raw(app.url, "OPTIONS", "/examples/cache/k", undefined, { Origin: "http://allowed.example", "Access-Control-Request-Method": "PUT" });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers["access-control-allow-origin"], "http://allowed.example");
      const refused = await raw(app.url, "OPTIONS", "/examples/cache/k", undefined, { Origin: "http://other.example", "Access-Control-Request-Method": "PUT" });
      assert.equal(refused.status, 400);
      const simple = await raw(app.url, "GET", "/", undefined, { Origin: "http://allowed.example" });
      assert.equal(simple.headers["access-control-allow-origin"], "http://allowed.example");
      assert.match(String(simple.headers["access-control-expose-headers"]), /X-Request-ID/);
    } finally {
      await app.close();
    }
  });
});

describe("requests the HTTP parser refuses", () => {
  it("are answered 400 with a problem document and a request id, then closed", async () => {
    const { answerClientError } = await import("../src/http/middleware.js");
    const http = await import("node:http");
    const net = await import("node:net");
    const server = http.createServer((_req, res) => res.end());
    server.on("clientError", answerClientError);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as import("node:net").AddressInfo;
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, "127.0.0.1", () => socket.write("GET /\u00e9 HTTP/1.1\r\nHost x\r\n\r\n"));
        let text = "";
        socket.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
        socket.on("end", () => resolve(text));
        socket.on("error", reject);
      });
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(answer, /Connection: close/);
      const id = /X-Request-ID: (\S+)/.exec(answer)?.[1] ?? "";
      assert.match(id, UUID4);
      const body = problem(answer.slice(answer.indexOf("\r\n\r\n") + 4));
      assert.deepEqual(body, { type: "about:blank", title: "Bad Request", status: 400, detail: "The request is not valid HTTP/1.1.", instance: "/", request_id: id });
    } finally {
      server.close();
    }
  });
});
