/**
 * Masking for responses (the contract's rule) and redaction for logs (broader patterns plus every
 * secret value this process has read), the same rules as libs/devstack_client/redaction.py.
 */

export const MASK = "********";

/** A response masks a key whose lowercased name contains any of these (openapi VaultSecret). */
export const MASKED_KEY_SUBSTRINGS = [
  "password",
  "passwd",
  "passphrase",
  "pwd",
  "secret",
  "token",
  "key",
  "credential",
  "private",
  "auth",
  "cookie",
  "dsn",
  "signature",
  "role_id",
] as const;

export function isMaskedKey(key: string): boolean {
  const lowered = key.toLowerCase();
  return MASKED_KEY_SUBSTRINGS.some((part) => lowered.includes(part));
}

// A log key is sensitive when its last word is one of these (password, db_password, X-Vault-Token).
const SENSITIVE_WORDS =
  "password|passwd|pwd|passphrase|secret|secret_id|role_id|token|client_token|apikey|api_key" +
  "|authorization|private_key|credential|credentials|cookie|set_cookie|dsn|signature";
const SENSITIVE_KEY = new RegExp(`(?:^|[_\\-.\\s])(?:${SENSITIVE_WORDS})$`, "i");

export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEY.test(key.replaceAll("-", "_"));
}

const PATTERNS: readonly [RegExp, string][] = [
  [
    /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|$)/g,
    "[REDACTED PRIVATE KEY]",
  ],
  [/([A-Za-z][A-Za-z0-9+.-]{0,31}:\/\/)[^\s:/@]+:[^\s/@]+@/g, "$1***@"],
  [/\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{20,}/g, "[REDACTED TOKEN]"],
  [/\b(password|passwd|pwd|secret_id|token)(\s*[=:]\s*)(['"]?)[^\s'",;]+\3/gi, `$1$2${MASK}`],
];

const MIN_KNOWN_SECRET = 6; // shorter values would mask innocent text everywhere

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export class Redactor {
  private readonly known = new Set<string>();
  private knownPattern: RegExp | undefined;

  /** Remember secret values so that they are masked wherever they appear later. */
  add(...values: unknown[]): void {
    let changed = false;
    for (const value of values) {
      if (typeof value === "string" && value.length >= MIN_KNOWN_SECRET && !this.known.has(value)) {
        this.known.add(value);
        changed = true;
      }
    }
    if (changed) {
      const alternatives = [...this.known].sort((a, b) => b.length - a.length).map(escapeRegExp);
      this.knownPattern = new RegExp(alternatives.join("|"), "g");
    }
  }

  /** Remember every value under a sensitive-looking key of a secret's data. */
  addSecretData(data: Readonly<Record<string, unknown>>): void {
    for (const [key, value] of Object.entries(data)) {
      if (typeof value === "string" && (isSensitiveKey(key) || isMaskedKey(key))) this.add(value);
    }
  }

  get knownCount(): number {
    return this.known.size;
  }

  redactText(text: string): string {
    let out = text;
    for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
    if (this.knownPattern !== undefined) out = out.replace(this.knownPattern, MASK);
    return out;
  }

  redact(value: unknown, key?: string, depth = 0): unknown {
    if (key !== undefined && isSensitiveKey(key) && value !== null && value !== undefined && value !== "" && typeof value !== "boolean") {
      return MASK;
    }
    if (typeof value === "string") return this.redactText(value);
    if (value === null || typeof value !== "object") return value;
    if (depth > 8) return "[nested]";
    if (Array.isArray(value)) return value.map((v: unknown) => this.redact(v, undefined, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = this.redact(v, k, depth + 1);
    return out;
  }
}

/** The process-wide redactor: the Vault client and secret store register what they read. */
export const redactor = new Redactor();
