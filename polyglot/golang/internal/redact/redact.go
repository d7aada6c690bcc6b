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

// IsSensitiveLogKey reports whether a log attribute's value must be masked whole.
func IsSensitiveLogKey(key string) bool {
	return sensitiveLogKey.MatchString(strings.ReplaceAll(key, "-", "_"))
}

var patterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?s)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|$)`), "[REDACTED PRIVATE KEY]"},
	{regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]{0,31}://)[^\s:/@]+:[^\s/@]+@`), "${1}***@"},
	{regexp.MustCompile(`\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_\-]{20,}`), "[REDACTED TOKEN]"},
	{regexp.MustCompile(`(?i)\b(password|passwd|pwd|secret_id|token)(\s*[=:]\s*)['"]?[^\s'",;]+['"]?`), "${1}${2}" + Mask},
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
		text = p.re.ReplaceAllString(text, p.repl)
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
