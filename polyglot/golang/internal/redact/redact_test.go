package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestIsMaskedKey(t *testing.T) {
	tests := map[string]bool{
		"password": true, "dbPassword": true, "apitoken": true, "private_key": true, "role_id": true,
		"AUTH_header": true, "monkey": true, "token_ttl": true, "dsn": true,
		"user": false, "database": false, "vhost": false, "tls_enabled": false, "host": false,
	}
	for key, want := range tests {
		if got := IsMaskedKey(key); got != want {
			t.Errorf("IsMaskedKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestIsSensitiveLogKey(t *testing.T) {
	tests := map[string]bool{
		"password": true, "db_password": true, "X-Vault-Token": true, "client_token": true,
		"secret_path": false, "token_ttl": false, "user": false,
	}
	for key, want := range tests {
		if got := IsSensitiveLogKey(key); got != want {
			t.Errorf("IsSensitiveLogKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestTextRedactsKnownValuesAndPatterns(t *testing.T) {
	r := New()
	r.Add("s3cr3t-value", "short")
	tests := []struct{ in, gone string }{
		{"login failed with s3cr3t-value inside", "s3cr3t-value"},
		{"postgres://app:hunter22@db:5432/x", "hunter22"},
		{"token hvs.CAESIJ0123456789abcdefghijklmnop here", "hvs.CAESIJ0123456789abcdefghijklmnop"},
		{"dsn password=topsecret host=x", "topsecret"},
		{"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----", "MIIB"},
	}
	for _, tt := range tests {
		if got := r.Text(tt.in); strings.Contains(got, tt.gone) {
			t.Errorf("Text(%q) = %q still holds %q", tt.in, got, tt.gone)
		}
	}
	if got := r.Text("a short word"); got != "a short word" {
		t.Errorf("values under 6 characters must not be remembered: %q", got)
	}
}

func TestHandlerRedactsEveryLogLine(t *testing.T) {
	var buf bytes.Buffer
	r := New()
	r.Add("the-db-password")
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil), r)).With("password", "with-attrs-secret")
	log.Info("connecting with the-db-password", "error", errors.New("auth the-db-password refused"),
		"secret_id", "abcdefgh", slog.Group("g", "token", "tok-value-1"))
	out := buf.String()
	for _, secret := range []string{"the-db-password", "with-attrs-secret", "abcdefgh", "tok-value-1"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line holds %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, Mask) {
		t.Errorf("no mask in %s", out)
	}
}

// Each pattern's filter is a condition the pattern cannot match without: on texts chosen to
// sit at each filter's edge, filtered and unfiltered redaction give the same text.
func TestFiltersNeverSkipAMatch(t *testing.T) {
	texts := []string{
		"", "/examples/cache/prof-key", "GET", "127.0.0.1:54321", "0f8e2c1a-1b2c-4d3e-8f9a-0123456789ab",
		"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----abc",
		"redis://user:pa55word@host:6379/0", "amqps://u:p@h/", "x://a:b@", "no scheme user:pass@host",
		"hvs.CAESIJ0123456789abcdefghijklmnop", "s.0123456789abcdefghijklmn", "b.0123456789abcdefghijklmn",
		"r.0123456789abcdefghijklmn", "hvb.0123456789abcdefghijklmn", "S.0123456789abcdefghijklmn",
		"password=topsecret", "PASSWORD: 'x y'", "Token=abc", "paſſword=abc", "to\u212Aen: abc", "secret_id=1",
		"pwd := value", "no separator password secret", "token", "a;token=b,c",
	}
	for _, text := range texts {
		filtered, plain := text, text
		for _, p := range patterns {
			if p.mayMatch(filtered) {
				filtered = p.re.ReplaceAllString(filtered, p.repl)
			}
			plain = p.re.ReplaceAllString(plain, p.repl)
		}
		if filtered != plain {
			t.Errorf("%q: filtered %q, unfiltered %q", text, filtered, plain)
		}
	}
}

func TestIsSensitiveLogKeyAnswersTheSameTwice(t *testing.T) {
	for _, key := range []string{"password", "X-Vault-Token", "path", "secret_path"} {
		if first, second := IsSensitiveLogKey(key), IsSensitiveLogKey(key); first != second {
			t.Errorf("%q: %v then %v", key, first, second)
		}
	}
}
