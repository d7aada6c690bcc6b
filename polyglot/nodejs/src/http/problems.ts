/**
 * Problem documents (RFC 9457), exactly the contract's Problem schema: built here only. Routes
 * throw the error tree (errors.ts); the error middleware answers with `problemFor(error)`.
 */
import type { Response } from "express";

import { DependencyError, DependencyTimeout, DevStackError, InvalidInput, NotFound, type DependencyName } from "../errors.js";

export const PROBLEM_MEDIA_TYPE = "application/problem+json";
export const GENERIC_DETAIL = "The server could not complete the request.";
export const INVALID_DETAIL = "The request is invalid; see errors.";
export const BAD_JSON_DETAIL = "The request body is not valid JSON.";
export const EMPTY_BODY_DETAIL = "The request body is empty; send a JSON object.";
export const WRONG_MEDIA_TYPE_DETAIL = "The request body must be application/json.";
export const NO_ROUTE_DETAIL = "No resource exists at this path.";
export const NO_METHOD_DETAIL = "This method is not allowed on this path.";

const REASONS: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

const DEPENDENCY_NAMES = new Set<string>(["vault", "postgres", "mysql", "mongodb", "redis", "rabbitmq"]);

export function reason(status: number): string {
  return REASONS[status] ?? "Error";
}

export interface FieldError {
  location: "path" | "query" | "header" | "body";
  field: string;
  detail: string;
}

/** A library message as a `detail`: capitalised, ending with a full stop. */
export function sentence(text: string): string {
  const trimmed = text.trim() || "The request failed";
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

// RFC 3986 pchar and "/" stay as they are; everything else is percent-encoded (as UTF-8).
const KEPT = /%(2F|21|24|26|27|28|29|2A|2B|2C|3B|3D|3A|40)/g;

/** The request path decoded (invalid UTF-8 replaced, as the Python apps' server does), then
 *  percent-encoded again, so that `instance` is a valid URI reference and the same everywhere. */
export function instanceOf(rawPath: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < rawPath.length; i++) {
    const char = rawPath.charCodeAt(i);
    if (char === 0x25 && /^[0-9A-Fa-f]{2}$/.test(rawPath.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(rawPath.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      for (const byte of Buffer.from(rawPath.charAt(i), "utf8")) bytes.push(byte);
    }
  }
  const decoded = new TextDecoder("utf-8", { fatal: false }).decode(Uint8Array.from(bytes));
  return encodeURIComponent(decoded).replace(KEPT, (m) => decodeURIComponent(m));
}

export interface ProblemOptions {
  dependency?: string | undefined;
  errors?: readonly FieldError[] | undefined;
  headers?: Readonly<Record<string, string>> | undefined;
}

export function problemBody(status: number, detail: string, rawPath: string, requestId: string, options: ProblemOptions = {}): Record<string, unknown> {
  const body: Record<string, unknown> = {
    type: "about:blank",
    title: reason(status),
    status,
    detail,
    instance: instanceOf(rawPath),
    request_id: requestId,
  };
  if (options.dependency !== undefined && DEPENDENCY_NAMES.has(options.dependency) && (status === 503 || status === 504)) {
    body.dependency = options.dependency;
  }
  if (options.errors !== undefined && options.errors.length > 0 && status === 422) body.errors = options.errors;
  return body;
}

/** The raw path of a request (no query string), as the client sent it. */
export function rawPathOf(url: string): string {
  const at = url.indexOf("?");
  return at < 0 ? url : url.slice(0, at);
}

export function sendProblem(res: Response, status: number, detail: string, options: ProblemOptions = {}): void {
  const requestId = String(res.locals.requestId ?? "unknown");
  const body = problemBody(status, detail, rawPathOf(res.req.originalUrl), requestId, options);
  for (const [name, value] of Object.entries(options.headers ?? {})) res.setHeader(name, value);
  res.status(status).type(PROBLEM_MEDIA_TYPE).send(JSON.stringify(body));
}

export class ValidationFailed extends DevStackError {
  override readonly status = 422;
  constructor(readonly errors: readonly FieldError[]) {
    super(INVALID_DETAIL);
  }
}

/** A request body refused before validation (413, 415, 400); the detail is ours to show. */
export class BodyRejected extends DevStackError {
  constructor(
    override readonly status: 400 | 413 | 415,
    detail: string,
  ) {
    super(detail);
  }
}

export interface ProblemAnswer {
  status: number;
  detail: string;
  options: ProblemOptions;
  /** Worth an error log (an unexpected failure), not a warning. */
  unexpected: boolean;
}

/** The answer to an error: the error tree mapped to statuses; anything else a generic 500. */
export function problemFor(error: unknown): ProblemAnswer {
  if (error instanceof ValidationFailed) return { status: 422, detail: INVALID_DETAIL, options: { errors: error.errors }, unexpected: false };
  if (error instanceof BodyRejected) return { status: error.status, detail: error.message, options: {}, unexpected: false };
  if (error instanceof DependencyTimeout) {
    return { status: 504, detail: `${error.dependency} did not answer in time.`, options: { dependency: error.dependency }, unexpected: false };
  }
  if (error instanceof DependencyError) {
    const dependency: DependencyName = error.dependency;
    return {
      status: 503,
      detail: `${dependency} is unavailable.`,
      options: { dependency, headers: { "Retry-After": String(Math.max(1, Math.trunc(error.retryAfter))) } },
      unexpected: false,
    };
  }
  if (error instanceof NotFound) return { status: 404, detail: sentence(error.message), options: {}, unexpected: false };
  if (error instanceof InvalidInput) return { status: 422, detail: sentence(error.message), options: {}, unexpected: false };
  return { status: 500, detail: GENERIC_DETAIL, options: {}, unexpected: true };
}
