/**
 * Request validation written from the contract's schemas, with the Python apps' semantics (JSON
 * Schema integers: `3` and `3.0`, never `"3"` or `true`; closed objects; lengths in code points):
 * every invalid parameter and body member is reported once, at its own location, and the route
 * answers 422 with all of them. A body member is named by a JSON Pointer, the body as a whole by "".
 */
import { ValidationFailed, type FieldError } from "./problems.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export class Checker {
  readonly errors: FieldError[] = [];

  fail(location: FieldError["location"], field: string, detail: string): undefined {
    if (!this.errors.some((e) => e.location === location && e.field === field)) this.errors.push({ location, field, detail });
    return undefined;
  }

  /** Throws ValidationFailed when anything was reported. */
  done(): void {
    if (this.errors.length > 0) throw new ValidationFailed(this.errors);
  }
}

export function pointer(...parts: string[]): string {
  return parts.map((p) => `/${p.replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}

function isObject(value: unknown): value is Record<string, Json> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A JSON number with no fractional part, within [min, max]; else undefined (reported). */
function integerMember(c: Checker, body: Record<string, Json>, key: string, min: number, max: number): number | undefined {
  const value = body[key];
  if (typeof value !== "number" || !Number.isFinite(value)) return c.fail("body", pointer(key), "Input should be a valid integer");
  if (!Number.isInteger(value)) return c.fail("body", pointer(key), "Input should be a valid integer, got a number with a fractional part");
  if (value < min) return c.fail("body", pointer(key), `Input should be greater than or equal to ${min}`);
  if (value > max) return c.fail("body", pointer(key), `Input should be less than or equal to ${max}`);
  return value;
}

function closed(c: Checker, body: Record<string, Json>, allowed: readonly string[]): void {
  for (const key of Object.keys(body)) if (!allowed.includes(key)) c.fail("body", pointer(key), "Extra inputs are not permitted");
}

function wholeBody(c: Checker, body: unknown): body is Record<string, Json> {
  if (isObject(body)) return true;
  c.fail("body", "", body === null ? "Field required" : "Input should be a valid dictionary or object");
  return false;
}

export const MAX_QUANTITY = 2 ** 31 - 1;

/** ItemCreate: name 1-100 code points without U+0000, quantity an integer in [0, 2^31-1] (default 0). */
export function itemCreate(c: Checker, body: unknown): { name: string; quantity: number } | undefined {
  if (!wholeBody(c, body)) return undefined;
  closed(c, body, ["name", "quantity"]);
  let name: string | undefined;
  const raw = body.name;
  if (!("name" in body)) c.fail("body", "/name", "Field required");
  else if (typeof raw !== "string") c.fail("body", "/name", "Input should be a valid string");
  else {
    // Code points, as the contract counts (not UTF-16 units, not graphemes).
    // eslint-disable-next-line @typescript-eslint/no-misused-spread -- code points are what is counted
    const length = [...raw].length;
    if (length < 1) c.fail("body", "/name", "String should have at least 1 character");
    else if (length > 100) c.fail("body", "/name", "String should have at most 100 characters");
    else if (raw.includes("\u0000")) c.fail("body", "/name", "String should not contain U+0000");
    else name = raw;
  }
  const quantity = "quantity" in body ? integerMember(c, body, "quantity", 0, MAX_QUANTITY) : 0;
  return name === undefined || quantity === undefined ? undefined : { name, quantity };
}

export const MAX_TTL = 86400;

/** CacheWrite: value a string, ttl_seconds an integer in [1, 86400] when present (never null). */
export function cacheWrite(c: Checker, body: unknown): { value: string; ttl?: number } | undefined {
  if (!wholeBody(c, body)) return undefined;
  closed(c, body, ["value", "ttl_seconds"]);
  let value: string | undefined;
  if (!("value" in body)) c.fail("body", "/value", "Field required");
  else if (typeof body.value !== "string") c.fail("body", "/value", "Input should be a valid string");
  else value = body.value;
  let ttl: number | undefined;
  let ttlOk = true;
  if ("ttl_seconds" in body) {
    if (body.ttl_seconds === null) {
      c.fail("body", "/ttl_seconds", "must be an integer; omit it for a key that never expires");
      ttlOk = false;
    } else {
      ttl = integerMember(c, body, "ttl_seconds", 1, MAX_TTL);
      ttlOk = ttl !== undefined;
    }
  }
  if (value === undefined || !ttlOk) return undefined;
  return ttl === undefined ? { value } : { value, ttl };
}

/** JsonObject: any JSON object. */
export function jsonObject(c: Checker, body: unknown): Record<string, Json> | undefined {
  return wholeBody(c, body) ? body : undefined;
}

const CACHE_KEY = /^[A-Za-z0-9:_.-]{1,200}$/;
const QUEUE_NAME = /^[A-Za-z0-9._-]{1,200}$/;

export function cacheKey(c: Checker, key: string): string | undefined {
  if (!CACHE_KEY.test(key)) return c.fail("path", "key", "String should match pattern '^[A-Za-z0-9:_.-]{1,200}$'");
  if (key === "." || key === "..") return c.fail("path", "key", "Value error, must not be . or ..");
  return key;
}

export function queueName(c: Checker, queue: string): string | undefined {
  if (!QUEUE_NAME.test(queue)) return c.fail("path", "queue", "String should match pattern '^[A-Za-z0-9._-]{1,200}$'");
  if (queue === "." || queue === "..") return c.fail("path", "queue", "Value error, must not be . or ..");
  if (queue.startsWith("amq.")) return c.fail("path", "queue", "Value error, must not start with amq. (RabbitMQ reserves it)");
  return queue;
}

const DECIMAL = /^[+-]?\d+(_\d+)*(\.0*)?$/;

/** An integer query parameter in [min, max], with its default when absent (the last value counts
 *  when it is repeated). */
export function queryInteger(c: Checker, raw: unknown, name: string, min: number, max: number, fallback: number): number | undefined {
  const value = Array.isArray(raw) ? (raw as unknown[]).at(-1) : raw;
  if (value === undefined) return fallback;
  const text = typeof value === "string" ? value.trim() : "";
  if (!DECIMAL.test(text)) return c.fail("query", name, "Input should be a valid integer, unable to parse string as an integer");
  const parsed = Number.parseInt(text.replaceAll("_", ""), 10);
  if (parsed < min) return c.fail("query", name, `Input should be greater than or equal to ${min}`);
  if (parsed > max) return c.fail("query", name, `Input should be less than or equal to ${max}`);
  return parsed;
}
