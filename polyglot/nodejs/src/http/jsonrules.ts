/**
 * JSON past the syntax (docs/api.md, "Values past the syntax"): what JSON's grammar allows and
 * nothing after the parser can carry is refused with 422, the first violation only: nesting
 * deeper than 64 levels (counted on the raw text, before parsing), then in document order a
 * string or member name holding a lone surrogate, or a number no double holds.
 */
import type { FieldError } from "./problems.js";
import { pointer } from "./validation.js";

export const MAX_NESTING = 64;

/** Whether objects and arrays nest deeper than `max` levels; string contents are skipped.
 *  Works on the raw bytes: brackets and quotes are ASCII, and UTF-8 never hides them. */
export function nestsTooDeep(body: Uint8Array, max = MAX_NESTING): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i];
    if (inString) {
      if (byte === 0x5c) i += 1; // backslash: skip the escaped character
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) inString = true;
    else if (byte === 0x5b || byte === 0x7b) {
      depth += 1;
      if (depth > max) return true;
    } else if (byte === 0x5d || byte === 0x7d) depth -= 1;
  }
  return false;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/** The first value of a parsed body that breaks a rule, as a field error; undefined when none does. */
export function firstViolation(value: unknown, at: string[] = []): FieldError | undefined {
  if (typeof value === "string") {
    return hasLoneSurrogate(value) ? { location: "body", field: pointer(...at), detail: "must not contain a lone surrogate (U+D800 to U+DFFF)" } : undefined;
  }
  if (typeof value === "number") {
    return Number.isFinite(value) ? undefined : { location: "body", field: pointer(...at), detail: "is a number out of range (not finite as a double)" };
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = firstViolation(value[i], [...at, String(i)]);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === "object") {
    for (const [key, member] of Object.entries(value as Record<string, unknown>)) {
      if (hasLoneSurrogate(key)) {
        return { location: "body", field: pointer(...at), detail: "has a member name with a lone surrogate (U+D800 to U+DFFF)" };
      }
      const found = firstViolation(member, [...at, key]);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Parses JSON as the Python apps accept it: UTF-8 (strictly, a BOM refused), no NaN or Infinity. */
export function parseJson(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(UTF8.decode(body)) };
  } catch {
    return { ok: false };
  }
}

/** A message body a client can be given: UTF-8 JSON, an object, within every rule above. */
export function deliverableObject(body: Uint8Array): Record<string, unknown> | undefined {
  if (nestsTooDeep(body)) return undefined;
  const parsed = parseJson(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  if (!parsed.ok || parsed.value === null || typeof parsed.value !== "object" || Array.isArray(parsed.value)) return undefined;
  return firstViolation(parsed.value) === undefined ? (parsed.value as Record<string, unknown>) : undefined;
}
