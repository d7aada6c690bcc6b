// Package stores holds one managed client per dependency (PostgreSQL, MariaDB, the MongoDB
// protocol, the Redis Cluster, RabbitMQ) and the contract's use cases over them.
//
// Every pool follows the rules of devstack_client's pools.py:
//   - it is built from the dependency's secret (from the secret store, so no Vault call once
//     cached), with TLS verified against the stack's CA when the secret says tls_enabled;
//   - it connects lazily: a server down at start makes the service degraded, not dead;
//   - every operation runs within OPERATION_TIMEOUT, and its errors are translated to 503
//     (unavailable), 504 (timeout) or 422 (the server refused the value), with a short reason;
//   - a new version of the secret rebuilds the pool (the old one closes after a grace period);
//     an authentication failure re-reads the secret at once (at most every two seconds);
//   - connection errors drop broken connections, so the pool recovers by itself;
//   - the outage policy (docs/api.md, "Dependency outages"): once an operation failed as
//     unavailable (or timed out while the driver knows its connection attempts fail), the
//     dependency is down, and every operation first opens a TCP connection to its port:
//     refused, 503 at once, without waiting for the driver's own timeouts; accepted, the
//     operation runs, and its success ends the down state.
package stores

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/config"
	"devstack/polyglot/golang/internal/secrets"
	"devstack/polyglot/golang/internal/vault"
)

// authRefreshMaxAge: an auth failure re-reads the secret unless it was read this recently.
const authRefreshMaxAge = 2 * time.Second

// Trust is the stack's CA, shared by every pool.
type Trust struct {
	Pool *x509.CertPool
	PEM  []byte
}

// LoadTrust reads a PEM CA chain.
func LoadTrust(pem []byte) (*Trust, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("the CA file holds no certificate")
	}
	return &Trust{Pool: pool, PEM: pem}, nil
}

// LoadTrustFile reads a PEM CA chain file.
func LoadTrustFile(path string) (*Trust, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA file: %w", err)
	}
	return LoadTrust(pem)
}

// Config is a client TLS configuration that verifies host against the CA only.
func (t *Trust) Config(host string) *tls.Config {
	return &tls.Config{RootCAs: t.Pool, ServerName: host, MinVersion: tls.VersionTLS12}
}

// TLSEnabled reads a secret's tls_enabled (default true).
func TLSEnabled(s *vault.Secret) bool {
	switch v := s.Data["tls_enabled"].(type) {
	case nil:
		return true
	case bool:
		return v
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "false", "0", "no", "off":
			return false
		}
	}
	return true
}

func str(s *vault.Secret, key string) string {
	v, _ := s.Data[key].(string)
	return v
}

// Describe is a short reason for an error, safe to show: its kind, never raw server text.
func Describe(err error) string {
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var certInvalid x509.CertificateInvalidError
	var tlsVerify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &certInvalid), errors.As(err, &tlsVerify):
		return "TLS certificate verification failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, context.DeadlineExceeded), isNetTimeout(err):
		return "timed out"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	return fmt.Sprintf("%T", err)
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// plainOrTLS is the address a client of dependency connects to: its TLS port when the secret
// says tls_enabled, else its plain port (Redis and RabbitMQ keep one for tools).
func plainOrTLS(cfg config.Config, dependency string) func(*vault.Secret) string {
	ep := cfg.Endpoint(dependency)
	return func(s *vault.Secret) string {
		if TLSEnabled(s) {
			return ep.Addr()
		}
		return config.Endpoint{Host: ep.Host, Port: config.DefaultPorts[dependency] + cfg.PortOffset}.Addr()
	}
}

// Driver is what each dependency provides to its pool.
type Driver[C any] struct {
	Name  string
	Build func(ctx context.Context, s *vault.Secret) (C, error)
	Close func(C)
	// Alive is false when the client is dead for good and must be rebuilt (nil: always alive).
	Alive func(C) bool
	// IsAuthError: the server refused our credentials.
	IsAuthError func(error) bool
	// IsDataError: the server is up and refused this value (422, not an outage).
	IsDataError func(error) bool
	// OnError is called after a backend error, to drop broken connections.
	OnError func(C, error)
	// Target is the host:port the client built from the secret connects to, checked with a
	// TCP connection while the dependency is down (nil: no check).
	Target func(*vault.Secret) string
	// KnownUnreachable: the client itself knows its attempts to reach the server fail, so a
	// timeout is an outage, not a slow server (the MongoDB driver's server selection).
	KnownUnreachable func(C) bool
}

// Pool is a managed client; safe for concurrent use.
type Pool[C any] struct {
	d       Driver[C]
	cfg     config.Config
	secrets *secrets.Store
	log     *slog.Logger

	mu            sync.Mutex
	client        C
	has           bool
	version       int
	rebuildWanted bool
	nextRebuild   time.Time
	closed        bool
	down          bool // the outage policy's down state
	Rebuilds      int
}

// NewPool makes a pool for d; nothing is built until Start or first use.
func NewPool[C any](d Driver[C], cfg config.Config, store *secrets.Store, log *slog.Logger) *Pool[C] {
	p := &Pool[C]{d: d, cfg: cfg, secrets: store, log: log}
	store.Subscribe(d.Name, p.onSecret)
	return p
}

// Name is the dependency's name.
func (p *Pool[C]) Name() string { return p.d.Name }

// Close closes the client; later operations fail with 503.
func (p *Pool[C]) Close() {
	p.mu.Lock()
	client, has := p.client, p.has
	p.closed, p.has = true, false
	p.mu.Unlock()
	if has {
		p.d.Close(client)
	}
}

// Version is the secret version the current client was built with.
func (p *Pool[C]) Version() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version
}

// Client is the current client, built (or rebuilt) when needed.
func (p *Pool[C]) Client(ctx context.Context) (C, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var zero C
	if p.closed {
		return zero, apperr.Unavailable(p.d.Name, "the client is closed", nil)
	}
	dead := p.has && p.d.Alive != nil && !p.d.Alive(p.client)
	due := p.rebuildWanted && !time.Now().Before(p.nextRebuild)
	if p.has && !dead && !due {
		return p.client, nil
	}
	secret, err := p.secrets.Get(ctx, p.d.Name)
	if err != nil {
		return zero, err
	}
	client, err := p.d.Build(ctx, secret)
	if err != nil {
		if p.has && !dead {
			p.nextRebuild = time.Now().Add(time.Second)
			p.log.Warn("rebuilding a pool failed; keeping the old one", "dependency", p.d.Name)
			return p.client, nil
		}
		return zero, err
	}
	old, hadOld := p.client, p.has
	p.client, p.has, p.version, p.rebuildWanted = client, true, secret.Version, false
	if hadOld {
		if dead {
			go p.d.Close(old)
		} else {
			p.Rebuilds++
			p.log.Info("pool rebuilt with new credentials", "dependency", p.d.Name, "version", secret.Version)
			go func() { // operations already running on it get time to finish
				time.Sleep(p.cfg.OperationTimeout)
				p.d.Close(old)
			}()
		}
	}
	return client, nil
}

func (p *Pool[C]) onSecret(s *vault.Secret) {
	p.mu.Lock()
	changed := p.has && s.Version != p.version
	if changed {
		p.rebuildWanted, p.nextRebuild = true, time.Time{}
	}
	p.mu.Unlock()
	if changed {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ConnectTimeout+time.Second)
			defer cancel()
			if _, err := p.Client(ctx); err != nil {
				p.log.Warn("rebuild failed", "dependency", p.d.Name, "reason", err.Error())
			}
		}()
	}
}

// Run performs one operation on the pool's client within OPERATION_TIMEOUT, errors translated.
// While the dependency is down, the operation runs only if its port accepts a connection.
func Run[C, T any](ctx context.Context, p *Pool[C], what string, fn func(context.Context, C) (T, error)) (T, error) {
	var zero T
	ctx, cancel := context.WithTimeout(ctx, p.cfg.OperationTimeout)
	defer cancel()
	if p.Down() {
		if err := p.reachable(ctx, what); err != nil {
			return zero, err
		}
	}
	client, err := p.Client(ctx)
	if err != nil {
		return zero, p.failed(p.translate(ctx, what, err, client, false), client, false)
	}
	value, err := fn(ctx, client)
	if err != nil {
		return zero, p.failed(p.translate(ctx, what, err, client, true), client, true)
	}
	p.setDown(false)
	return value, nil
}

// Down reports whether the dependency is down (the outage policy).
func (p *Pool[C]) Down() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

func (p *Pool[C]) setDown(down bool) {
	p.mu.Lock()
	changed := p.down != down
	p.down = down
	p.mu.Unlock()
	if changed && down {
		p.log.Warn("dependency down: operations check its port first", "dependency", p.d.Name)
	} else if changed {
		p.log.Info("dependency reachable again", "dependency", p.d.Name)
	}
}

// failed marks the dependency down when err (translated) says it is unavailable, or timed out
// while the client knows it cannot reach the server.
func (p *Pool[C]) failed(err error, client C, hasClient bool) error {
	dep, ok := apperr.AsDependency(err)
	if !ok || dep.Dependency != p.d.Name {
		return err
	}
	if !dep.Timeout || (hasClient && p.d.KnownUnreachable != nil && p.d.KnownUnreachable(client)) {
		p.setDown(true)
	}
	return err
}

// reachable opens (and closes) a TCP connection to the dependency's port, within
// CONNECT_TIMEOUT: refused or not answered, the dependency is unavailable now.
func (p *Pool[C]) reachable(ctx context.Context, what string) error {
	if p.d.Target == nil {
		return nil
	}
	secret, err := p.secrets.Get(ctx, p.d.Name) // cached: no Vault call
	if err != nil {
		return err
	}
	dialCtx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(dialCtx, "tcp", p.d.Target(secret))
	if err != nil {
		if ctx.Err() != nil { // the operation's own time ran out first
			return apperr.Timeout(p.d.Name, fmt.Sprintf("%s timed out after %gs", what, p.cfg.OperationTimeout.Seconds()), err)
		}
		return apperr.Unavailable(p.d.Name, what+": "+Describe(err), err)
	}
	_ = conn.Close()
	return nil
}

func (p *Pool[C]) translate(ctx context.Context, what string, err error, client C, hasClient bool) error {
	var nf *apperr.NotFoundError
	var inv *apperr.InvalidInputError
	var dep *apperr.DependencyError
	switch {
	case errors.As(err, &nf), errors.As(err, &inv):
		return err
	case errors.As(err, &dep):
		return err
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller went away (its client hung up): the dependency did nothing wrong, so it is
		// neither marked down nor its client reset; the error stays a cancellation.
		return ctx.Err()
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || isNetTimeout(err):
		if hasClient && p.d.OnError != nil {
			p.d.OnError(client, err)
		}
		return apperr.Timeout(p.d.Name, fmt.Sprintf("%s timed out after %gs", what, p.cfg.OperationTimeout.Seconds()), err)
	case p.d.IsDataError != nil && p.d.IsDataError(err):
		return apperr.Invalid(err, "%s cannot store this value", p.d.Name)
	}
	if p.d.IsAuthError != nil && p.d.IsAuthError(err) {
		p.log.Warn("authentication failed; re-reading the secret", "dependency", p.d.Name)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.VaultTimeout)
			defer cancel()
			_, _ = p.secrets.Refresh(ctx, p.d.Name, authRefreshMaxAge)
		}()
	}
	if hasClient && p.d.OnError != nil {
		p.d.OnError(client, err)
	}
	return apperr.Unavailable(p.d.Name, what+": "+Describe(err), err)
}
