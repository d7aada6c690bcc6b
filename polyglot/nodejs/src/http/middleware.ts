/**
 * The request pipeline around the routes, in the Python apps' order: request id, metrics by route
 * template, CORS (when configured), the rate limit on /examples/** (when configured), then per
 * route the body gate (413, 415, 400 in that order) and validation (422), and last the error
 * middleware that turns anything thrown into a problem document.
 */
import { randomUUID } from "node:crypto";

import type { NextFunction, Request, RequestHandler, Response } from "express";

import type { Logger } from "../log.js";
import { UNMATCHED, type Metrics } from "../metrics.js";
import type { RedisRateLimiter } from "../stores/redis.js";
import {
  BAD_JSON_DETAIL,
  BodyRejected,
  EMPTY_BODY_DETAIL,
  GENERIC_DETAIL,
  NO_ROUTE_DETAIL,
  problemFor,
  PROBLEM_MEDIA_TYPE,
  problemBody,
  sendProblem,
  ValidationFailed,
  WRONG_MEDIA_TYPE_DETAIL,
} from "./problems.js";
import { firstViolation, MAX_NESTING, nestsTooDeep, parseJson } from "./jsonrules.js";

const SANE_REQUEST_ID = /^[A-Za-z0-9._:+/=-]{1,128}$/;

export function saneRequestId(value: unknown): string | undefined {
  return typeof value === "string" && SANE_REQUEST_ID.test(value) ? value : undefined;
}

/** Honours a sane X-Request-ID, else generates a UUID v4; echoed on every response, and on the
 *  request's access log line (a refused id is never logged). */
export function requestId(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const id = saneRequestId(req.headers["x-request-id"]) ?? randomUUID();
    const log = logger.child({ request_id: id });
    res.locals.requestId = id;
    res.locals.log = log;
    res.setHeader("X-Request-ID", id);
    res.on("finish", () => {
      log.info(
        { method: req.method, path: req.originalUrl, status: res.statusCode, duration_ms: Math.round((performance.now() - started) * 1000) / 1000 },
        "request",
      );
    });
    next();
  };
}

/** Count, latency and in-flight requests labelled by route template (`<unmatched>` otherwise). */
export function metrics(m: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const method = req.method;
    res.on("finish", () => {
      const route = typeof res.locals.route === "string" ? res.locals.route : UNMATCHED;
      if (typeof res.locals.inFlight === "string") m.httpInFlight.dec({ method, route: res.locals.inFlight });
      m.httpRequests.inc({ method, route, status: String(res.statusCode) });
      m.httpDuration.observe({ method, route }, (performance.now() - started) / 1000);
    });
    next();
  };
}

/** Marks the request with its route template (for metrics), once routed. */
export function routed(m: Metrics, template: string): RequestHandler {
  return (req, res, next) => {
    res.locals.route = template;
    res.locals.inFlight = template;
    m.httpInFlight.inc({ method: req.method, route: template });
    next();
  };
}

/** CORS as the Python apps configure it (Starlette's CORSMiddleware semantics). */
export function cors(origins: readonly string[]): RequestHandler {
  const any = origins.includes("*");
  const methods = ["GET", "POST", "PUT", "DELETE"];
  const allowHeaders = ["accept", "accept-language", "content-language", "content-type", "x-request-id"];
  const expose = "X-Request-ID, Location, Retry-After, RateLimit, RateLimit-Policy";
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin === undefined) {
      next();
      return;
    }
    const allowed = any || origins.includes(origin);
    const requested = req.headers["access-control-request-method"];
    if (req.method === "OPTIONS" && typeof requested === "string") {
      res.setHeader("Vary", "Origin");
      res.setHeader("Access-Control-Allow-Methods", methods.join(", "));
      res.setHeader("Access-Control-Max-Age", "600");
      res.setHeader("Access-Control-Allow-Headers", "Accept, Accept-Language, Content-Language, Content-Type, X-Request-ID");
      const wanted = (req.headers["access-control-request-headers"] ?? "")
        .split(",")
        .map((h) => h.trim().toLowerCase())
        .filter((h) => h !== "");
      const failures: string[] = [];
      if (!allowed) failures.push("origin");
      if (!methods.includes(requested)) failures.push("method");
      if (wanted.some((h) => !allowHeaders.includes(h))) failures.push("headers");
      if (failures.length > 0) {
        res.status(400).type("text/plain").send(`Disallowed CORS ${failures.join(", ")}`);
        return;
      }
      res.setHeader("Access-Control-Allow-Origin", any ? "*" : origin);
      res.status(200).type("text/plain").send("OK");
      return;
    }
    if (allowed) {
      res.setHeader("Access-Control-Allow-Origin", any ? "*" : origin);
      res.setHeader("Access-Control-Expose-Headers", expose);
      if (!any) res.setHeader("Vary", "Origin");
    }
    next();
  };
}

/** The quota on /examples/**: 429 over it; under it, RateLimit and RateLimit-Policy on the answer.
 *  A limiter that cannot reach Redis lets the request through (logged): never a Redis outage
 *  turned into errors. */
export function rateLimit(limiter: () => RedisRateLimiter | undefined): RequestHandler {
  return (req, res, next) => {
    const current = limiter();
    if (current === undefined || !req.path.startsWith("/examples/")) {
      next();
      return;
    }
    const client = req.socket.remoteAddress ?? "unknown";
    current.hit(client).then(
      (decision) => {
        const policy = `"default";q=${decision.limit};w=${decision.windowSeconds}`;
        if (!decision.allowed) {
          const reset = String(decision.resetSeconds);
          sendProblem(res, 429, `Rate limit exceeded; retry after ${reset} seconds.`, {
            headers: { "Retry-After": reset, RateLimit: `"default";r=0;t=${reset}`, "RateLimit-Policy": policy },
          });
          return;
        }
        res.setHeader("RateLimit", `"default";r=${decision.remaining};t=${decision.resetSeconds}`);
        res.setHeader("RateLimit-Policy", policy);
        next();
      },
      (error: unknown) => {
        (res.locals.log as Logger).warn({ error: error instanceof Error ? error.message : String(error) }, "rate limit not checked: the limiter failed");
        next();
      },
    );
  };
}

export function isJsonMediaType(contentType: string | undefined): boolean {
  if (contentType === undefined || contentType === "") return false;
  return (contentType.split(";", 1)[0] ?? "").trim().toLowerCase() === "application/json";
}

/** The body of a route that takes one, checked in the contract's order: size (413, from
 *  Content-Length without reading, else while reading), media type (415), JSON syntax (400). */
export function bodyGate(limit: number): RequestHandler {
  const tooLarge = `The request body is larger than ${limit} bytes.`;
  return (req: Request, res: Response, next: NextFunction) => {
    const json = isJsonMediaType(req.headers["content-type"]);
    const declared = (req.headers["content-length"] ?? "").trim();
    if (/^\d+$/.test(declared)) {
      if (Number(declared) > limit) {
        next(new BodyRejected(413, tooLarge));
        return;
      }
      if (!json) {
        next(new BodyRejected(415, WRONG_MEDIA_TYPE_DETAIL));
        return;
      }
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (error?: Error): void => {
      if (done) return;
      done = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      if (error !== undefined) {
        req.resume(); // discard the rest
        next(error);
        return;
      }
      const body = Buffer.concat(chunks);
      if (!json) next(new BodyRejected(415, WRONG_MEDIA_TYPE_DETAIL));
      else if (nestsTooDeep(body)) {
        next(new ValidationFailed([{ location: "body", field: "", detail: `nests objects and arrays deeper than ${MAX_NESTING} levels` }]));
      } else if (body.toString("latin1").trim() === "") next(new BodyRejected(400, EMPTY_BODY_DETAIL));
      else {
        const parsed = parseJson(body);
        if (!parsed.ok) {
          next(new BodyRejected(400, BAD_JSON_DETAIL));
          return;
        }
        const violation = firstViolation(parsed.value);
        if (violation !== undefined) {
          next(new ValidationFailed([violation]));
          return;
        }
        res.locals.body = parsed.value;
        next();
      }
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) finish(new BodyRejected(413, tooLarge));
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish();
    const onError = (): void => finish(new BodyRejected(400, BAD_JSON_DETAIL));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  };
}

/** The last middleware: the error tree as problem documents; anything unexpected a 500 problem,
 *  logged with the request id and without its text reaching the client. */
export function errorHandler(fallback: Logger) {
  return (error: unknown, req: Request, res: Response, next: NextFunction): void => {
    const log = (res.locals.log as Logger | undefined) ?? fallback;
    if (error instanceof URIError) {
      // A path whose percent-decoding is not UTF-8 names nothing that exists.
      sendProblem(res, 404, NO_ROUTE_DETAIL);
      return;
    }
    const answer = problemFor(error);
    if (answer.unexpected) log.error({ err: error, path: req.path, method: req.method }, "unhandled error");
    else if (answer.status >= 500) log.warn({ error: error instanceof Error ? error.message : String(error), path: req.path }, "dependency failed");
    if (res.headersSent) {
      next(error);
      return;
    }
    sendProblem(res, answer.status, answer.unexpected ? GENERIC_DETAIL : answer.detail, answer.options);
  };
}

/** A request the HTTP parser refused: a 400 problem document with a generated request id, then
 *  the connection closed (for `server.on("clientError", ...)`). */
export function answerClientError(error: Error & { code?: string }, socket: import("node:stream").Duplex): void {
  if (!socket.writable || (error.code === "ECONNRESET")) {
    socket.destroy();
    return;
  }
  const id = randomUUID();
  const body = JSON.stringify(problemBody(400, "The request is not valid HTTP/1.1.", "/", id));
  socket.end(
    `HTTP/1.1 400 Bad Request\r\nContent-Type: ${PROBLEM_MEDIA_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-ID: ${id}\r\nConnection: close\r\n\r\n${body}`,
  );
}
