package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(values map[string]string) func(string) string {
	return func(k string) string { return values[k] }
}

func base(t *testing.T) map[string]string {
	dir := t.TempDir()
	role, secret := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	if err := os.WriteFile(role, []byte("role\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte(" sid \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"DEVSTACK_VAULT_ROLE_ID_FILE": role, "DEVSTACK_VAULT_SECRET_ID_FILE": secret}
}

func TestDefaultsAndOffset(t *testing.T) {
	values := base(t)
	values["DEVSTACK_PORT_OFFSET"] = "100"
	values["DEVSTACK_MYSQL_PORT"] = "4000"
	c, err := Load(env(values))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"vault", c.VaultAddr, "http://127.0.0.1:8300"},
		{"postgres", c.Endpoint("postgres").Port, 5532},
		{"redis uses its TLS port", c.Endpoint("redis").Port, 6490},
		{"rabbitmq uses AMQPS", c.Endpoint("rabbitmq").Port, 5771},
		{"an explicit port is used as is", c.Endpoint("mysql").Port, 4000},
		{"http port", c.HTTPPort, 8002},
		{"https port", c.HTTPSPort, 8445},
		{"operation timeout", c.OperationTimeout, 5 * time.Second},
		{"secret ttl", c.SecretTTL, 300 * time.Second},
		{"renew fraction", c.TokenRenewFraction, 2.0 / 3.0},
		{"body limit", c.BodyLimit, int64(1 << 20)},
	}
	for _, tt := range checks {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if id, err := c.ReadSecretID(); err != nil || id != "sid" {
		t.Errorf("secret-id %q, %v", id, err)
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{"no credentials", map[string]string{"DEVSTACK_VAULT_ROLE_ID_FILE": ""}, "no Vault credentials"},
		{"a token is refused", map[string]string{"DEVSTACK_VAULT_TOKEN": "hvs.x"}, "not accepted"},
		{"plain HTTP off loopback", map[string]string{"DEVSTACK_VAULT_ADDR": "http://10.0.0.1:8200"}, "plain HTTP"},
		{"bad origin", map[string]string{"DEVSTACK_API_CORS_ORIGINS": "http://a.example/path"}, "not an origin"},
		{"half a certificate", map[string]string{"DEVSTACK_API_TLS_CERT_FILE": "/x"}, "set both"},
		{"bad timeout", map[string]string{"DEVSTACK_OPERATION_TIMEOUT": "soon"}, "OPERATION_TIMEOUT"},
		{"same ports", map[string]string{"DEVSTACK_API_HTTP_PORT": "9000", "DEVSTACK_API_HTTPS_PORT": "9000"}, "must differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := base(t)
			for k, v := range tt.set {
				values[k] = v
			}
			_, err := Load(env(values))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestHTTPSVaultOffLoopbackIsAccepted(t *testing.T) {
	values := base(t)
	values["DEVSTACK_VAULT_ADDR"] = "https://vault.example:8200/"
	values["DEVSTACK_API_CORS_ORIGINS"] = "http://localhost:3000, https://app.example"
	c, err := Load(env(values))
	if err != nil {
		t.Fatal(err)
	}
	if c.VaultAddr != "https://vault.example:8200" || len(c.CORSOrigins) != 2 {
		t.Errorf("got %q %v", c.VaultAddr, c.CORSOrigins)
	}
}

func TestCredentialFilesAreReadAtEachCall(t *testing.T) {
	values := base(t)
	c, err := Load(env(values))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(values["DEVSTACK_VAULT_SECRET_ID_FILE"], []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if id, _ := c.ReadSecretID(); id != "new" {
		t.Errorf("secret-id %q, want the replaced file's", id)
	}
	if err := os.WriteFile(values["DEVSTACK_VAULT_SECRET_ID_FILE"], []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadSecretID(); err == nil {
		t.Error("an empty file must be refused")
	}
}
