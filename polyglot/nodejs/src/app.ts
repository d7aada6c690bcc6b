/**
 * The Express application, built apart from the process that listens (main.ts), so tests build it
 * around fakes and call it on an ephemeral port.
 */
import express, { type Express, type Request, type Response } from "express";

import type { ApiSettings } from "./config.js";
import { errorHandler, cors, metrics as metricsMiddleware, rateLimit, requestId } from "./http/middleware.js";
import { NO_METHOD_DETAIL, NO_ROUTE_DETAIL, sendProblem } from "./http/problems.js";
import type { Logger } from "./log.js";
import type { Metrics } from "./metrics.js";
import { registerRoutes } from "./routes/index.js";
import { RouteTable } from "./routes/table.js";
import type { Stack } from "./stack.js";
import { RedisRateLimiter } from "./stores/redis.js";

export const IMPLEMENTATION = "nodejs";

export interface AppOptions {
  readonly api: Pick<ApiSettings, "corsOrigins" | "rateLimit" | "rateWindowSeconds" | "bodyLimit">;
  readonly stack: Stack;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

export function createApp(options: AppOptions): Express {
  const { api, stack, metrics, logger } = options;
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");
  app.set("case sensitive routing", true);
  app.set("strict routing", true);
  app.set("query parser", "simple");

  const limiter = api.rateLimit > 0 ? new RedisRateLimiter(stack.redis, api.rateLimit, api.rateWindowSeconds) : undefined;

  app.use(requestId(logger));
  app.use(metricsMiddleware(metrics));
  if (api.corsOrigins.length > 0) app.use(cors(api.corsOrigins));
  app.use(rateLimit(() => limiter));

  const ctx = { stack: () => stack, metrics, bodyLimit: api.bodyLimit, implementation: IMPLEMENTATION };
  const table = new RouteTable(app, ctx);
  // No route takes it: 405 with Allow when the path exists, else 404.
  const unrouted = (req: Request, res: Response): void => {
    const allowed = table.allowed(req.path);
    if (allowed.length > 0) sendProblem(res, 405, NO_METHOD_DETAIL, { headers: { Allow: allowed.join(", ") } });
    else sendProblem(res, 404, NO_ROUTE_DETAIL);
  };
  registerRoutes(table, ctx);
  app.use(unrouted);
  app.use(errorHandler(logger));
  return app;
}
