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
