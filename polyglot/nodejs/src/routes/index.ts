/**
 * Every operation of openapi/devstack.yaml. Each handler is a thin adapter: parameters validated,
 * one use case called, its result sent as the contract's schema. Errors are thrown (errors.ts,
 * http/problems.ts) and answered as problem documents by the error middleware.
 */
import type { Request, Response } from "express";

import { NotFound, quoted } from "../errors.js";
import { httpStatus, type HealthReport } from "../health.js";
import { TEXT_FORMAT } from "../metrics.js";
import { BACKENDS, DEFAULT_PAGE, MAX_PAGE, type Backend } from "../stores/models.js";
import { MAX_CONSUME } from "../stores/rabbitmq.js";
import { Checker, cacheKey, cacheWrite, itemCreate, jsonObject, queryInteger, queueName } from "../http/validation.js";
import type { RouteContext, RouteTable } from "./table.js";

export const CONTRACT_VERSION = "1.0.0";
const HEALTH_RETRY_AFTER_SECONDS = "5";

function param(req: Request, name: string): string {
  const value = (req.params as Record<string, string | undefined>)[name];
  return value ?? "";
}

function sendJson(res: Response, status: number, body: unknown): void {
  res.status(status).type("application/json").send(JSON.stringify(body));
}

function sendHealth(res: Response, report: HealthReport): void {
  const status = httpStatus(report);
  if (status === 503) res.setHeader("Retry-After", HEALTH_RETRY_AFTER_SECONDS);
  sendJson(res, status, report);
}

export function registerRoutes(table: RouteTable, ctx: RouteContext): void {
  const stack = ctx.stack;

  // -- service and health ---------------------------------------------------------------------
  table.add("GET", "/", (_req, res) => {
    sendJson(res, 200, {
      name: "devstack-core",
      implementation: ctx.implementation,
      version: CONTRACT_VERSION,
      links: { self: "/", health: "/health", health_all: "/health/all", metrics: "/metrics" },
    });
  });
  table.add("GET", "/metrics", async (_req, res) => {
    const text = await ctx.metrics.render();
    res.status(200).setHeader("Content-Type", TEXT_FORMAT);
    res.send(text);
  });
  table.add("GET", "/health", (_req, res) => {
    sendJson(res, 200, { status: "healthy" });
  });
  table.add("GET", "/health/all", async (_req, res) => {
    sendHealth(res, await stack().health.check());
  });
  table.add("GET", "/health/{service}", async (req, res) => {
    const service = param(req, "service");
    const health = stack().health;
    if (!health.has(service)) throw new NotFound(`there is no dependency named ${quoted(service)}`);
    sendHealth(res, await health.check([service]));
  });

  // -- vault ------------------------------------------------------------------------------------
  table.add("GET", "/examples/vault/secret/{service}", async (req, res) => {
    sendJson(res, 200, await stack().secrets.read(param(req, "service")));
  });
  table.add("GET", "/examples/vault/secret/{service}/{key}", async (req, res) => {
    sendJson(res, 200, await stack().secrets.readKey(param(req, "service"), param(req, "key")));
  });

  // -- databases: the same five operations on each backend -------------------------------------
  for (const backend of BACKENDS) registerDatabase(table, ctx, backend);

  // -- cache --------------------------------------------------------------------------------------
  const cachePath = "/examples/cache/{key}";
  table.add("GET", cachePath, async (req, res) => {
    const c = new Checker();
    const key = cacheKey(c, param(req, "key"));
    c.done();
    sendJson(res, 200, await stack().cache.get(key ?? ""));
  });
  table.add(
    "PUT",
    cachePath,
    async (req, res) => {
      const c = new Checker();
      const key = cacheKey(c, param(req, "key"));
      const body = cacheWrite(c, res.locals.body);
      c.done();
      if (key === undefined || body === undefined) return;
      const { entry, created } = await stack().cache.put(key, body.value, body.ttl);
      sendJson(res, created ? 201 : 200, entry);
    },
    { body: true },
  );
  table.add("DELETE", cachePath, async (req, res) => {
    const c = new Checker();
    const key = cacheKey(c, param(req, "key"));
    c.done();
    await stack().cache.delete(key ?? "");
    res.status(204).end();
  });

  // -- messaging ----------------------------------------------------------------------------------
  table.add("GET", "/examples/messaging/queues/{queue}", async (req, res) => {
    const c = new Checker();
    const queue = queueName(c, param(req, "queue"));
    c.done();
    sendJson(res, 200, await stack().queues.inspect(queue ?? ""));
  });
  table.add(
    "POST",
    "/examples/messaging/queues/{queue}/messages",
    async (req, res) => {
      const c = new Checker();
      const queue = queueName(c, param(req, "queue"));
      const payload = jsonObject(c, res.locals.body);
      c.done();
      if (queue === undefined || payload === undefined) return;
      sendJson(res, 202, await stack().queues.publish(queue, payload));
    },
    { body: true },
  );
  table.add("GET", "/examples/messaging/queues/{queue}/messages", async (req, res) => {
    const c = new Checker();
    const queue = queueName(c, param(req, "queue"));
    const max = queryInteger(c, req.query.max, "max", 1, MAX_CONSUME, 10);
    c.done();
    const pending = await stack().queues.consume(queue ?? "", max ?? 10);
    // Acknowledged only once the answer carrying them is written; put back if it never is.
    res.on("finish", () => pending.settle(true));
    res.on("close", () => pending.settle(false));
    try {
      sendJson(res, 200, pending.result);
    } catch (error) {
      pending.settle(false);
      throw error;
    }
  });

  // -- the Redis cluster --------------------------------------------------------------------------
  table.add("GET", "/examples/redis/cluster/nodes", async (_req, res) => {
    sendJson(res, 200, { nodes: await stack().cluster.nodes() });
  });
  table.add("GET", "/examples/redis/cluster/slots", async (_req, res) => {
    sendJson(res, 200, await stack().cluster.slots());
  });
  table.add("GET", "/examples/redis/cluster/info", async (_req, res) => {
    sendJson(res, 200, await stack().cluster.info());
  });
  table.add("GET", "/examples/redis/nodes/{node}/info", async (req, res) => {
    sendJson(res, 200, await stack().cluster.nodeInfo(param(req, "node")));
  });
}

function registerDatabase(table: RouteTable, ctx: RouteContext, backend: Backend): void {
  const items = `/examples/${backend}/items`;
  const repo = () => ctx.stack().items(backend);
  table.add("GET", `/examples/${backend}/query`, async (_req, res) => {
    sendJson(res, 200, await repo().query());
  });
  table.add("GET", items, async (req, res) => {
    const c = new Checker();
    const limit = queryInteger(c, req.query.limit, "limit", 1, MAX_PAGE, DEFAULT_PAGE);
    c.done();
    sendJson(res, 200, await repo().list(limit ?? DEFAULT_PAGE));
  });
  table.add(
    "POST",
    items,
    async (_req, res) => {
      const c = new Checker();
      const body = itemCreate(c, res.locals.body);
      c.done();
      if (body === undefined) return;
      const item = await repo().create(body);
      res.setHeader("Location", `${items}/${item.id}`);
      sendJson(res, 201, item);
    },
    { body: true },
  );
  table.add("GET", `${items}/{item_id}`, async (req, res) => {
    sendJson(res, 200, await repo().get(param(req, "item_id")));
  });
  table.add("DELETE", `${items}/{item_id}`, async (req, res) => {
    await repo().delete(param(req, "item_id"));
    res.status(204).end();
  });
}
