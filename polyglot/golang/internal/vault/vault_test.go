package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/config"
)

// fakeVault is the part of the Vault API the client uses: AppRole login, renew-self (capped at
// a max TTL), lookup-self, revoke-self and KV v2 reads, with switches for an outage, revoked
// tokens and root policies.
type fakeVault struct {
	mu          sync.Mutex
	ttl, maxTTL int                  // seconds
	tokens      map[string]time.Time // token -> issued
	logins      atomic.Int32
	renewals    atomic.Int32
	refused     atomic.Int32
	down        atomic.Bool
	root        bool
	loginDelay  time.Duration
	seenTokens  []string
	secretValue string
}

func newFakeVault(ttl, maxTTL int) *fakeVault {
	return &fakeVault{ttl: ttl, maxTTL: maxTTL, tokens: map[string]time.Time{}, secretValue: "pw-1"}
}

func (f *fakeVault) revokeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = map[string]time.Time{}
}

func (f *fakeVault) valid(r *http.Request) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	token := r.Header.Get("X-Vault-Token")
	f.seenTokens = append(f.seenTokens, token)
	issued, ok := f.tokens[token]
	return token, ok && time.Since(issued) < time.Duration(f.maxTTL)*time.Second
}

func write(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		write(w, 503, map[string]any{"errors": []string{"Vault is sealed"}})
		return
	}
	denied := map[string]any{"errors": []string{"permission denied"}}
	switch {
	case r.URL.Path == "/v1/sys/health":
		write(w, 200, map[string]any{"initialized": true, "sealed": false})
	case r.URL.Path == "/v1/auth/approle/login":
		time.Sleep(f.loginDelay)
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body["role_id"] != "role" || body["secret_id"] != "sid" {
			f.refused.Add(1)
			write(w, 400, map[string]any{"errors": []string{"invalid role or secret ID"}})
			return
		}
		n := f.logins.Add(1)
		token := fmt.Sprintf("hvs.token-%d-abcdefghijklmnopqrstuvwxyz", n)
		f.mu.Lock()
		f.tokens[token] = time.Now()
		f.seenTokens = append(f.seenTokens, r.Header.Get("X-Vault-Token"))
		f.mu.Unlock()
		policies := []string{"golang"}
		if f.root {
			policies = []string{"root"}
		}
		write(w, 200, map[string]any{"auth": map[string]any{"client_token": token, "lease_duration": f.ttl, "renewable": true, "policies": policies}})
	case r.URL.Path == "/v1/auth/token/renew-self":
		token, ok := f.valid(r)
		if !ok {
			write(w, 403, denied)
			return
		}
		f.renewals.Add(1)
		f.mu.Lock()
		left := f.maxTTL - int(time.Since(f.tokens[token]).Seconds())
		f.mu.Unlock()
		write(w, 200, map[string]any{"auth": map[string]any{"client_token": token, "lease_duration": max(0, min(f.ttl, left)), "renewable": true}})
	case r.URL.Path == "/v1/auth/token/lookup-self":
		if _, ok := f.valid(r); !ok {
			write(w, 403, denied)
			return
		}
		write(w, 200, map[string]any{"data": map[string]any{"policies": []string{"golang"}}})
	case r.URL.Path == "/v1/auth/token/revoke-self":
		w.WriteHeader(204)
	case strings.HasPrefix(r.URL.Path, "/v1/secret/data/"):
		if _, ok := f.valid(r); !ok {
			write(w, 403, denied)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/missing") {
			write(w, 404, map[string]any{"errors": []string{}})
			return
		}
		f.mu.Lock()
		value := f.secretValue
		f.mu.Unlock()
		write(w, 200, map[string]any{"data": map[string]any{
			"data":     map[string]any{"user": "app", "password": value, "tls_enabled": true},
			"metadata": map[string]any{"version": 3},
		}})
	default:
		write(w, 404, map[string]any{"errors": []string{}})
	}
}

func testConfig(t *testing.T, addr string) config.Config {
	t.Helper()
	dir := t.TempDir()
	role, secret := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	_ = os.WriteFile(role, []byte("role"), 0o600)
	_ = os.WriteFile(secret, []byte("sid"), 0o600)
	cfg, err := config.Load(func(k string) string {
		return map[string]string{
			"DEVSTACK_VAULT_ADDR": addr, "DEVSTACK_VAULT_ROLE_ID_FILE": role, "DEVSTACK_VAULT_SECRET_ID_FILE": secret,
			"DEVSTACK_BACKOFF_INITIAL": "0.01", "DEVSTACK_BACKOFF_MAX": "0.05", "DEVSTACK_VAULT_START_TIMEOUT": "5",
			"DEVSTACK_TOKEN_RENEW_FRACTION": "0.5",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func started(t *testing.T, fake *fakeVault) (*Client, *httptest.Server) {
	t.Helper()
	server := httptest.NewServer(fake)
	t.Cleanup(server.Close)
	c, err := New(testConfig(t, server.URL), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, server
}

func TestShortTokenTTLSurvivesSeveralMaxTTLs(t *testing.T) {
	// A 1 s token with a 3 s max TTL, for 4.5 s: renewals until capped, then new logins; every
	// read in the meantime succeeds.
	fake := newFakeVault(1, 3)
	c, _ := started(t, fake)
	ctx, cancel := context.WithTimeout(context.Background(), 4500*time.Millisecond)
	defer cancel()
	go c.KeepAlive(ctx)
	reads := 0
	for ctx.Err() == nil {
		if _, err := c.ReadKV(ctx, "postgres"); err != nil && ctx.Err() == nil {
			t.Fatalf("read %d failed: %v", reads, err)
		}
		reads++
		time.Sleep(50 * time.Millisecond)
	}
	if fake.renewals.Load() < 1 || fake.logins.Load() < 2 {
		t.Errorf("renewals %d, logins %d: want renewals and new logins past the max TTL", fake.renewals.Load(), fake.logins.Load())
	}
}

func TestRefusedTokenIsReplacedOnceForManyCallers(t *testing.T) {
	fake := newFakeVault(3600, 86400)
	c, _ := started(t, fake)
	fake.revokeAll()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.ReadKV(context.Background(), "postgres"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("read failed: %v", err)
	}
	if n := fake.logins.Load(); n != 2 {
		t.Errorf("logins = %d, want 2 (the first, then one shared re-login)", n)
	}
}

func TestStartRetriesWhileVaultIsDown(t *testing.T) {
	fake := newFakeVault(3600, 86400)
	fake.down.Store(true)
	server := httptest.NewServer(fake)
	defer server.Close()
	c, err := New(testConfig(t, server.URL), Options{})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(200*time.Millisecond, func() { fake.down.Store(false) })
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	if !c.Status().Authenticated {
		t.Error("not authenticated after start")
	}
}

func TestRootTokenAndBadCredentialsAreRefused(t *testing.T) {
	fake := newFakeVault(3600, 86400)
	fake.root = true
	server := httptest.NewServer(fake)
	defer server.Close()
	c, _ := New(testConfig(t, server.URL), Options{})
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("start with a root token: %v", err)
	}

	cfg := testConfig(t, server.URL)
	cfg.SecretID = "wrong"
	c, _ = New(cfg, Options{})
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("start with a bad secret-id: %v", err)
	}
}

func TestOutageIsReportedAndRecovered(t *testing.T) {
	fake := newFakeVault(3600, 86400)
	c, _ := started(t, fake)
	fake.down.Store(true)
	_, err := c.ReadKV(context.Background(), "postgres")
	if dep, ok := apperr.AsDependency(err); !ok || dep.Dependency != "vault" || dep.Status() != 503 {
		t.Fatalf("read during the outage: %v", err)
	}
	if s := c.Status(); s.Reachable || s.LastError == "" {
		t.Errorf("status during the outage: %+v", s)
	}
	fake.down.Store(false)
	if _, err := c.ReadKV(context.Background(), "postgres"); err != nil {
		t.Fatalf("read after the outage: %v", err)
	}
	if !c.Status().Reachable {
		t.Error("still unreachable after a successful read")
	}
}

func TestMissingSecretIsNotFound(t *testing.T) {
	c, _ := started(t, newFakeVault(3600, 86400))
	if _, err := c.ReadKV(context.Background(), "missing"); !apperr.IsNotFound(err) {
		t.Errorf("got %v, want NotFound", err)
	}
}

func TestATokenFromTheEnvironmentIsNeverSent(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "root-token-from-env")
	fake := newFakeVault(3600, 86400)
	c, _ := started(t, fake)
	if _, err := c.ReadKV(context.Background(), "postgres"); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	for _, seen := range fake.seenTokens {
		if seen == "root-token-from-env" {
			t.Fatal("the environment's VAULT_TOKEN reached Vault")
		}
	}
}

func TestProbeSeesAnOutageAtOnce(t *testing.T) {
	fake := newFakeVault(3600, 86400)
	c, _ := started(t, fake)
	c.Probe(context.Background())
	if !c.Status().Reachable {
		t.Fatal("unreachable while up")
	}
	fake.down.Store(true)
	c.Probe(context.Background())
	if s := c.Status(); s.Reachable || s.LastError != "503 sealed or not ready" {
		t.Errorf("status after a sealed answer: %+v", s)
	}
	fake.down.Store(false)
	c.Probe(context.Background())
	if !c.Status().Reachable {
		t.Error("still unreachable after Vault came back")
	}
}

func TestRefusedCredentialsAreNotSentAgainButANewSecretIDIs(t *testing.T) {
	fake := newFakeVault(3600, 86400)
	server := httptest.NewServer(fake)
	defer server.Close()
	cfg := testConfig(t, server.URL)
	if err := os.WriteFile(cfg.SecretIDFile, []byte("dead"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := New(cfg, Options{})
	for range 3 {
		_ = c.refresh(context.Background(), ActionLogin, c.Generation())
	}
	if n := fake.refused.Load(); n != 1 {
		t.Fatalf("refused logins sent: %d, want 1 (the same credentials are held back)", n)
	}
	if err := os.WriteFile(cfg.SecretIDFile, []byte("sid"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.refresh(context.Background(), ActionLogin, c.Generation()); err != nil {
		t.Fatalf("a new secret-id is used at once: %v", err)
	}
}
