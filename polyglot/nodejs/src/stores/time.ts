/**
 * Timestamps rendered exactly as the Python apps render them (Pydantic): UTC, `Z`, and the
 * fraction as six digits when there is one, none when it is zero. An item written by one
 * implementation reads back byte for byte through every other.
 */

export interface Instant {
  /** Milliseconds since the epoch, whole. */
  readonly ms: number;
  /** Microseconds within the millisecond (0-999). */
  readonly micro: number;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

export function formatInstant(instant: Instant): string {
  const date = new Date(instant.ms);
  const base =
    `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}` +
    `T${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}`;
  const micros = date.getUTCMilliseconds() * 1000 + instant.micro;
  return micros === 0 ? `${base}Z` : `${base}.${pad(micros, 6)}Z`;
}

export function fromDate(date: Date): Instant {
  return { ms: date.getTime(), micro: 0 };
}

/** Now, at millisecond precision: what every backend stores unchanged. */
export function now(): Instant {
  return { ms: Date.now(), micro: 0 };
}

const SQL_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?|Z)?$/;

/** A timestamp as PostgreSQL (timestamptz, ISO DateStyle) or MariaDB (DATETIME) writes it;
 *  without an offset it is UTC. Microseconds are kept. */
export function parseSqlTimestamp(text: string): Instant {
  const m = SQL_TIMESTAMP.exec(text.trim());
  if (m === null) return fromDate(new Date(text));
  const [, y, mo, d, h, mi, s, frac, sign, oh, om, os] = m;
  const digits = (frac ?? "").padEnd(6, "0").slice(0, 6);
  const micros = Number(digits);
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) + Math.floor(micros / 1000);
  if (sign !== undefined) {
    const offset = (Number(oh ?? 0) * 3600 + Number(om ?? 0) * 60 + Number(os ?? 0)) * 1000;
    ms += sign === "+" ? -offset : offset;
  }
  return { ms, micro: micros % 1000 };
}

/** The instant as a MariaDB DATETIME(6) literal, in UTC. */
export function sqlDatetime(instant: Instant): string {
  return formatInstant({ ms: instant.ms, micro: instant.micro }).replace("T", " ").replace("Z", "").padEnd(19, "0");
}
