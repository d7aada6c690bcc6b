// Package vault keeps an AppRole token alive and reads KV v2 secrets, through
// hashicorp/vault/api, the way devstack_client's vault.py does:
//   - AppRole login (role-id and secret-id files re-read at each login);
//   - renewal at TOKEN_RENEW_FRACTION (2/3) of the lease; a new login instead when the renewal
//     was capped, the token is not renewable, or it expired;
//   - one refresh in flight (a mutex and a generation number), whether started by the schedule
//     or by a call that found its token refused (checked with lookup-self first);
//   - jittered exponential backoff while Vault is down;
//   - no token from the environment, ever (VAULT_TOKEN is cleared), and no root token.
package vault

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/config"
	"devstack/polyglot/golang/internal/redact"
)

// Secret is one KV v2 secret; Data holds the real values (never log it whole).
type Secret struct {
	Path    string
	Data    map[string]any
	Version int
}

// Status is what the client knows about Vault from its own traffic (no call made).
type Status struct {
	Reachable     bool
	Authenticated bool
	TokenTTL      time.Duration // -1 when unknown or never expiring
	LastError     string
	DownFor       time.Duration
}

// Counters is the hook for metrics (nil-safe).
type Counters interface {
	VaultRequest(operation string)
	VaultLogin(result string)
	VaultRenewal(result string)
}

// Client is safe for concurrent use.
type Client struct {
	cfg      config.Config
	api      *api.Client // carries the current token
	anon     *api.Client // never carries a token: login and the CA chain
	http     *http.Client
	redactor *redact.Redactor
	log      *slog.Logger
	counters Counters
	now      func() time.Time

	authMu     sync.Mutex // one refresh in flight
	mu         sync.Mutex // guards what follows
	token      string
	lease      *Lease
	generation int
	forceLogin bool
	reachable  bool
	lastError  string
	downSince  time.Time
	probing    *probeFlight
	refusedKey [32]byte // the credentials of the last refused login, and when
	refusedAt  time.Time

	requests int64
}

// Options are the optional collaborators.
type Options struct {
	Redactor   *redact.Redactor
	Logger     *slog.Logger
	Counters   Counters
	Now        func() time.Time
	HTTPClient *http.Client
}

// New builds a client (no network call).
func New(cfg config.Config, opts Options) (*Client, error) {
	httpClient := opts.HTTPClient
	if httpClient == nil {
		transport := &http.Transport{
			Proxy:               nil, // loopback Vault: never through a proxy from the environment
			DialContext:         (&net.Dialer{Timeout: cfg.ConnectTimeout}).DialContext,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		}
		httpClient = &http.Client{Transport: transport, Timeout: cfg.VaultTimeout}
	}
	build := func() (*api.Client, error) {
		conf := api.DefaultConfig()
		conf.Address = cfg.VaultAddr
		conf.HttpClient = httpClient
		conf.MaxRetries = 0 // our own backoff decides when to try again
		conf.Timeout = cfg.VaultTimeout
		conf.Limiter = nil
		conf.Error = nil
		client, err := api.NewClient(conf)
		if err != nil {
			return nil, err
		}
		client.ClearToken() // VAULT_TOKEN from the environment is never used
		client.ClearNamespace()
		return client, nil
	}
	main, err := build()
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	anon, err := build()
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	c := &Client{
		cfg: cfg, api: main, anon: anon, http: httpClient,
		redactor: opts.Redactor, log: opts.Logger, counters: opts.Counters, now: opts.Now,
		reachable: true,
	}
	if c.redactor == nil {
		c.redactor = redact.New()
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Requests is how many requests this client sent to Vault.
func (c *Client) Requests() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

// Generation increases with every login.
func (c *Client) Generation() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.generation
}

// Start logs in (retrying while Vault is unreachable, up to VaultStartTimeout).
func (c *Client) Start(ctx context.Context) error {
	deadline := c.now().Add(c.cfg.VaultStartTimeout)
	for attempt := 1; ; attempt++ {
		err := c.refresh(ctx, ActionLogin, c.Generation())
		if err == nil {
			return nil
		}
		var refused *refusedError
		if errors.As(err, &refused) {
			return fmt.Errorf("vault refused the AppRole login: %w", err)
		}
		var cfgErr *credentialError
		if errors.As(err, &cfgErr) {
			return err
		}
		delay := Backoff(attempt, c.cfg.BackoffInitial, c.cfg.BackoffMax, nil)
		if c.now().Add(delay).After(deadline) {
			return err
		}
		c.log.Warn("vault not ready, retrying login", "retry_in", delay.Seconds(), "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// KeepAlive renews or replaces the token on schedule until ctx ends.
func (c *Client) KeepAlive(ctx context.Context) {
	failures := 0
	for {
		c.mu.Lock()
		lease, force := c.lease, c.forceLogin
		c.mu.Unlock()
		if lease == nil {
			return
		}
		now := c.now()
		action, at := PlanRefresh(*lease, now, c.cfg.TokenRenewFraction)
		if action == ActionNone {
			return
		}
		if force {
			action = ActionLogin
		}
		delay := at.Sub(now)
		if failures > 0 {
			delay = Backoff(failures, c.cfg.BackoffInitial, c.cfg.BackoffMax, nil)
		}
		if delay > 0 {
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		if err := c.refresh(ctx, action, c.Generation()); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			var refused *refusedError
			if errors.As(err, &refused) && action == ActionRenew {
				c.mu.Lock()
				c.forceLogin = true // refused (revoked, expired): a new token is needed
				c.mu.Unlock()
			}
			c.log.Warn("vault token refresh failed", "action", string(action), "attempt", failures, "error", err)
			continue
		}
		failures = 0
	}
}

// Close revokes the token (best effort, one second).
func (c *Client) Close() {
	c.mu.Lock()
	token := c.token
	c.token = ""
	c.mu.Unlock()
	if token == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.count("revoke")
	_ = c.api.Auth().Token().RevokeSelfWithContext(ctx, "")
}

// Status is built from the client's own state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{Reachable: c.reachable, LastError: c.lastError, TokenTTL: -1}
	if c.lease != nil && c.lease.TTL > 0 {
		s.TokenTTL = max(0, c.lease.ExpiresAt().Sub(c.now()))
	}
	s.Authenticated = c.token != "" && s.TokenTTL != 0
	if !c.reachable && !c.downSince.IsZero() {
		s.DownFor = c.now().Sub(c.downSince)
	}
	return s
}

// TokenTTL is the seconds left on the token (for the metrics gauge).
func (c *Client) TokenTTL() float64 {
	ttl := c.Status().TokenTTL
	if ttl < 0 {
		return 0
	}
	return ttl.Seconds()
}

// -- the token ------------------------------------------------------------------------------

// RefusedLoginHold is how long refused AppRole credentials are not sent again (OpenBao locks an
// AppRole out for 15 minutes after five refused logins); a new secret-id is tried at once.
const RefusedLoginHold = 960 * time.Second

type refusedError struct {
	status int
	msg    string
}

func (e *refusedError) Error() string { return fmt.Sprintf("vault answered %d: %s", e.status, e.msg) }

type credentialError struct{ err error }

func (e *credentialError) Error() string { return e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

func (c *Client) refresh(ctx context.Context, action Action, seenGeneration int) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if action == ActionLogin && c.Generation() != seenGeneration {
		return nil // another caller logged in meanwhile
	}
	if action == ActionRenew {
		return c.renew(ctx)
	}
	return c.login(ctx)
}

func (c *Client) login(ctx context.Context) error {
	roleID, err := c.cfg.ReadRoleID()
	if err != nil {
		return &credentialError{err}
	}
	secretID, err := c.cfg.ReadSecretID()
	if err != nil {
		return &credentialError{err}
	}
	c.redactor.Add(roleID, secretID)
	key := sha256.Sum256([]byte(roleID + "\x00" + secretID))
	c.mu.Lock()
	held := c.refusedKey == key && c.now().Sub(c.refusedAt) < RefusedLoginHold
	c.mu.Unlock()
	if held { // five refused logins lock the AppRole out: wait for new credentials instead
		return &refusedError{status: 400, msg: "these AppRole credentials were refused; waiting for a new secret-id"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.VaultTimeout)
	defer cancel()
	c.count("login")
	secret, err := c.anon.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id": roleID, "secret_id": secretID,
	})
	if err = c.observe("login", err); err != nil {
		var refused *refusedError
		if errors.As(err, &refused) && (refused.status == 400 || refused.status == 403) {
			c.mu.Lock()
			c.refusedKey, c.refusedAt = key, c.now()
			c.mu.Unlock()
		}
		c.countLogin("failure")
		return err
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		c.countLogin("failure")
		return apperr.Unavailable("vault", "login: no token in the answer", nil)
	}
	for _, p := range secret.Auth.Policies {
		if p == "root" {
			return &credentialError{errors.New("refusing a root token: this service takes an AppRole only")}
		}
	}
	token := secret.Auth.ClientToken
	c.redactor.Add(token)
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	c.mu.Lock()
	c.token = token
	c.lease = &Lease{TTL: ttl, LoginTTL: ttl, Renewable: secret.Auth.Renewable, RefreshedAt: c.now()}
	c.generation++
	c.forceLogin = false
	c.mu.Unlock()
	c.api.SetToken(token)
	c.countLogin("success")
	c.log.Info("vault login", "ttl", ttl.Seconds())
	return nil
}

func (c *Client) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.VaultTimeout)
	defer cancel()
	c.count("renew")
	secret, err := c.api.Auth().Token().RenewSelfWithContext(ctx, 0)
	if err = c.observe("renew", err); err != nil {
		c.countRenewal("failure")
		return err
	}
	if secret == nil || secret.Auth == nil {
		c.countRenewal("failure")
		return apperr.Unavailable("vault", "renew: no auth in the answer", nil)
	}
	c.mu.Lock()
	loginTTL := time.Duration(0)
	if c.lease != nil {
		loginTTL = c.lease.LoginTTL
	}
	c.lease = &Lease{
		TTL:         time.Duration(secret.Auth.LeaseDuration) * time.Second,
		LoginTTL:    loginTTL,
		Renewable:   secret.Auth.Renewable,
		RefreshedAt: c.now(),
	}
	c.mu.Unlock()
	c.countRenewal("success")
	c.log.Debug("vault token renewed", "ttl", secret.Auth.LeaseDuration)
	return nil
}

// observe records reachability from a call's outcome and translates its error: unreachable
// (network, 5xx) is a DependencyError; an answered 4xx is a refusedError inside a 503.
func (c *Client) observe(operation string, err error) error {
	if err == nil {
		c.mu.Lock()
		c.reachable, c.lastError, c.downSince = true, "", time.Time{}
		c.mu.Unlock()
		return nil
	}
	var resp *api.ResponseError
	if errors.As(err, &resp) && resp.StatusCode < 500 {
		c.mu.Lock()
		c.reachable, c.lastError, c.downSince = true, "", time.Time{}
		c.mu.Unlock()
		refused := &refusedError{status: resp.StatusCode, msg: strings.Join(resp.Errors, "; ")}
		return &apperr.DependencyError{Dependency: "vault", Reason: operation + ": " + refused.Error(), RetryAfter: apperr.DefaultRetryAfter, Cause: refused}
	}
	reason := "unreachable"
	timeout := errors.Is(err, context.DeadlineExceeded) || isTimeout(err)
	if errors.As(err, &resp) {
		reason = fmt.Sprintf("%d server error", resp.StatusCode)
		if resp.StatusCode == 503 {
			reason = "503 sealed or not ready"
		}
		timeout = false
	} else if timeout {
		reason = "timed out"
	}
	c.mu.Lock()
	if c.reachable {
		c.downSince = c.now()
	}
	c.reachable, c.lastError = false, reason
	c.mu.Unlock()
	if timeout {
		return apperr.Timeout("vault", operation+" timed out", err)
	}
	return apperr.Unavailable("vault", operation+": "+reason, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Client) count(operation string) {
	c.mu.Lock()
	c.requests++
	c.mu.Unlock()
	if c.counters != nil {
		c.counters.VaultRequest(operation)
	}
}

func (c *Client) countLogin(result string) {
	if c.counters != nil {
		c.counters.VaultLogin(result)
	}
}

func (c *Client) countRenewal(result string) {
	if c.counters != nil {
		c.counters.VaultRenewal(result)
	}
}

// -- what the service uses -------------------------------------------------------------------

// call runs an authenticated call; a 403 is checked with lookup-self and, when the token is
// the problem, answered by one new login and one retry.
func (c *Client) call(ctx context.Context, operation string, fn func(ctx context.Context) error) error {
	generation := c.Generation()
	err := c.do(ctx, operation, fn)
	var refused *refusedError
	if err == nil || !errors.As(err, &refused) || refused.status != 403 {
		return err
	}
	if c.Generation() == generation { // nobody replaced the token meanwhile: is it the problem?
		invalid := c.tokenIsInvalid(ctx)
		if !invalid && c.Generation() == generation {
			return err // a genuine permission error
		}
		if invalid {
			if err := c.refresh(ctx, ActionLogin, generation); err != nil {
				return err
			}
		}
	}
	return c.do(ctx, operation, fn)
}

func (c *Client) do(ctx context.Context, operation string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.VaultTimeout)
	defer cancel()
	c.count(operation)
	return c.observe(operation, fn(ctx))
}

func (c *Client) tokenIsInvalid(ctx context.Context) bool {
	err := c.do(ctx, "lookup", func(ctx context.Context) error {
		_, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
		return err
	})
	var refused *refusedError
	return errors.As(err, &refused) && refused.status == 403
}

// IsForbidden reports whether err is Vault refusing access (403).
func IsForbidden(err error) bool {
	var refused *refusedError
	return errors.As(err, &refused) && refused.status == 403
}

// ReadKV reads the latest version of a KV v2 secret; NotFound when it does not exist.
func (c *Client) ReadKV(ctx context.Context, path string) (*Secret, error) {
	var secret *api.Secret
	err := c.call(ctx, "kv_read", func(ctx context.Context) error {
		var err error
		secret, err = c.api.Logical().ReadWithContext(ctx, c.cfg.KVMount+"/data/"+path)
		return err
	})
	if err != nil {
		var refused *refusedError
		if errors.As(err, &refused) && refused.status == 404 {
			return nil, apperr.NotFound("secret %s does not exist", apperr.Repr(path))
		}
		return nil, err
	}
	if secret == nil || secret.Data == nil {
		return nil, apperr.NotFound("secret %s does not exist", apperr.Repr(path))
	}
	data, _ := secret.Data["data"].(map[string]any)
	if data == nil {
		return nil, apperr.NotFound("secret %s does not exist", apperr.Repr(path))
	}
	version := 0
	if meta, ok := secret.Data["metadata"].(map[string]any); ok {
		version = asInt(meta["version"])
	}
	for key, value := range data {
		if s, ok := value.(string); ok && redact.IsSensitiveLogKey(key) {
			c.redactor.Add(s)
		}
	}
	return &Secret{Path: path, Data: data, Version: version}, nil
}

func asInt(v any) int {
	switch n := v.(type) {
	case interface{ Int64() (int64, error) }:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}

// CAChain fetches the PEM chain of the issuing CA (no token needed).
func (c *Client) CAChain(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.VaultTimeout)
	defer cancel()
	c.count("ca_chain")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.VaultAddr+"/v1/"+c.cfg.PKIMount+"/ca_chain", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.observe("ca_chain", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "BEGIN CERTIFICATE") {
		return nil, apperr.Unavailable("vault", "ca_chain: no CA chain in the answer", err)
	}
	_ = c.observe("ca_chain", nil)
	return body, nil
}

type probeFlight struct {
	done chan struct{}
}

// Probe asks Vault whether it serves (GET sys/health, no token, not audited), concurrent
// callers sharing one request, and records the answer in Status: so a Vault that died shows at
// the next health check, not at the next secret refresh.
func (c *Client) Probe(ctx context.Context) {
	c.mu.Lock()
	flight := c.probing
	if flight == nil {
		flight = &probeFlight{done: make(chan struct{})}
		c.probing = flight
		c.mu.Unlock()
		go func() {
			defer func() {
				c.mu.Lock()
				c.probing = nil
				c.mu.Unlock()
				close(flight.done)
			}()
			c.probeOnce(context.WithoutCancel(ctx))
		}()
	} else {
		c.mu.Unlock()
	}
	select {
	case <-flight.done:
	case <-ctx.Done():
	}
}

func (c *Client) probeOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, min(c.cfg.HealthTimeout, c.cfg.VaultTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.VaultAddr+"/v1/sys/health?standbyok=true&perfstandbyok=true", nil)
	if err != nil {
		return
	}
	resp, err := c.http.Do(req)
	if err != nil {
		_ = c.observe("health", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusServiceUnavailable, http.StatusNotImplemented:
		_ = c.observe("health", &api.ResponseError{StatusCode: 503, HTTPMethod: "GET", URL: "sys/health"})
	default:
		_ = c.observe("health", nil)
	}
}
