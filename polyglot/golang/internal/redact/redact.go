// Package redact holds the two rules about secret values: masking in API responses (a key is
// secret when its lowercased name contains one of the contract's substrings) and redaction of
// everything that goes to a log (values of secret-looking keys, Vault tokens, PEM private keys,
// credentials in URLs, password=... in text, and every secret value the service has read).
package redact

import (
	"context"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Mask replaces a secret value in every response, whatever its length.
const Mask = "********"

// MaskedKeySubstrings is the contract's list (VaultSecret x-masked-key-substrings).
var MaskedKeySubstrings = []string{
	"password", "passwd", "passphrase", "pwd", "secret", "token", "key", "credential",
	"private", "auth", "cookie", "dsn", "signature", "role_id",
}

// IsMaskedKey reports whether a response must mask the value of key.
func IsMaskedKey(key string) bool {
	lowered := strings.ToLower(key)
	for _, part := range MaskedKeySubstrings {
		if strings.Contains(lowered, part) {
			return true
		}
	}
	return false
}

// A log key is sensitive when its last word names a secret (password, db_password,
// client_token, private_key), but not secret_path or token_ttl.
var sensitiveLogKey = regexp.MustCompile(`(?i)(?:^|[_\-.\s])(?:password|passwd|pwd|passphrase|secret|secret_id|role_id|token|client_token|apikey|api_key|authorization|private_key|credential|credentials|cookie|set_cookie|dsn|signature)$`)

// sensitiveLogKeys remembers IsSensitiveLogKey's answer per key: a log's keys are the code's
// own few names, and the regular expression is the costliest step of a log line otherwise.
var sensitiveLogKeys sync.Map // string -> bool

// IsSensitiveLogKey reports whether a log attribute's value must be masked whole.
func IsSensitiveLogKey(key string) bool {
	if known, ok := sensitiveLogKeys.Load(key); ok {
		return known.(bool)
	}
	sensitive := sensitiveLogKey.MatchString(strings.ReplaceAll(key, "-", "_"))
	sensitiveLogKeys.Store(key, sensitive)
	return sensitive
}

// patterns are the secret-looking texts. Each runs only on a text that holds what the pattern
// cannot match without (`mayMatch`): an access line's path, method and request id hold none of
// it, and running the four expressions on every value was a tenth of the Go API's CPU on a
// cache GET (perf, docs/performance.md). A test holds each filter to its pattern.
var patterns = []struct {
	re       *regexp.Regexp
	repl     string
	mayMatch func(text string) bool
}{
	{
		regexp.MustCompile(`(?s)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|$)`),
		"[REDACTED PRIVATE KEY]",
		func(text string) bool { return strings.Contains(text, "-----BEGIN ") },
	},
	{
		regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]{0,31}://)[^\s:/@]+:[^\s/@]+@`),
		"${1}***@",
		func(text string) bool { return strings.Contains(text, "://") && strings.Contains(text, "@") },
	},
	{
		regexp.MustCompile(`\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_\-]{20,}`),
		"[REDACTED TOKEN]",
		func(text string) bool {
			return strings.Contains(text, "s.") || strings.Contains(text, "b.") || strings.Contains(text, "r.")
		},
	},
	{
		regexp.MustCompile(`(?i)\b(password|passwd|pwd|secret_id|token)(\s*[=:]\s*)['"]?[^\s'",;]+['"]?`),
		"${1}${2}" + Mask,
		// Only the separator: (?i) folds more than strings.ToLower does (ſ matches s).
		func(text string) bool { return strings.ContainsAny(text, "=:") },
	},
}

const minKnownSecret = 6 // shorter values would mask innocent text everywhere

// Redactor scrubs known secret values and secret-looking text; safe for concurrent use.
type Redactor struct {
	mu       sync.RWMutex
	known    map[string]bool
	replacer *strings.Replacer
}

// New returns an empty Redactor.
func New() *Redactor { return &Redactor{known: map[string]bool{}} }

// Add remembers secret values so they are masked wherever they appear later.
func (r *Redactor) Add(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, v := range values {
		if len(v) >= minKnownSecret && !r.known[v] {
			r.known[v] = true
			changed = true
		}
	}
	if !changed {
		return
	}
	all := make([]string, 0, len(r.known))
	for v := range r.known {
		all = append(all, v)
	}
	sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
	pairs := make([]string, 0, 2*len(all))
	for _, v := range all {
		pairs = append(pairs, v, Mask)
	}
	r.replacer = strings.NewReplacer(pairs...)
}

// Text redacts a string.
func (r *Redactor) Text(text string) string {
	for _, p := range patterns {
		if p.mayMatch(text) {
			text = p.re.ReplaceAllString(text, p.repl)
		}
	}
	r.mu.RLock()
	replacer := r.replacer
	r.mu.RUnlock()
	if replacer != nil {
		text = replacer.Replace(text)
	}
	return text
}

// Attr redacts one log attribute (groups included).
func (r *Redactor) Attr(a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindGroup:
		attrs := a.Value.Group()
		out := make([]any, 0, len(attrs))
		for _, inner := range attrs {
			out = append(out, r.Attr(inner))
		}
		return slog.Group(a.Key, out...)
	case slog.KindString:
		if IsSensitiveLogKey(a.Key) && a.Value.String() != "" {
			return slog.String(a.Key, Mask)
		}
		return slog.String(a.Key, r.Text(a.Value.String()))
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			return slog.String(a.Key, r.Text(err.Error()))
		}
		if IsSensitiveLogKey(a.Key) {
			return slog.String(a.Key, Mask)
		}
		return a
	default:
		return a
	}
}

// Handler wraps a slog.Handler so that every record's message and attributes are redacted.
type Handler struct {
	inner slog.Handler
	r     *Redactor
}

// NewHandler redacts what reaches inner.
func NewHandler(inner slog.Handler, r *Redactor) *Handler { return &Handler{inner: inner, r: r} }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Text(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.r.Attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.r.Attr(a)
	}
	return &Handler{inner: h.inner.WithAttrs(red), r: h.r}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), r: h.r}
}
