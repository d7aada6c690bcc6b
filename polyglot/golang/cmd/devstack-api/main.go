// Command devstack-api is the Go reference implementation of openapi/devstack.yaml: HTTP and
// HTTPS from one process, secrets from Vault through the service's own AppRole, every
// connection verified against the stack's CA. Configuration: the DEVSTACK_* variables of
// docs/client.md. SIGTERM or SIGINT shut it down gracefully.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"devstack/polyglot/golang/internal/config"
	"devstack/polyglot/golang/internal/health"
	"devstack/polyglot/golang/internal/httpapi"
	"devstack/polyglot/golang/internal/metrics"
	"devstack/polyglot/golang/internal/ratelimit"
	"devstack/polyglot/golang/internal/redact"
	"devstack/polyglot/golang/internal/secrets"
	"devstack/polyglot/golang/internal/stores"
	"devstack/polyglot/golang/internal/vault"
)

// gcPercent is the collector's target when GOGC is not set: a heap that grows by half before
// a collection rather than doubling keeps the resident set under the 30 MB target after 10,000
// requests (docs/polyglot/golang.md). The one process-wide setting, made here only.
const gcPercent = 50

// readHeaderTimeout bounds a request's head, and an HTTPS connection's TLS handshake.
const readHeaderTimeout = 10 * time.Second

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, `{"level":"ERROR","msg":"devstack-api failed","error":%q}`+"\n", err.Error())
		os.Exit(1)
	}
}

var levels = map[string]slog.Level{
	"DEBUG": slog.LevelDebug, "INFO": slog.LevelInfo, "WARNING": slog.LevelWarn,
	"ERROR": slog.LevelError, "CRITICAL": slog.LevelError,
}

// redisLogger sends go-redis's own messages to the service's log.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...), "logger", "go-redis")
}

// Service is everything run starts, for tests and for shutdown.
type Service struct {
	Handler http.Handler
	Vault   *vault.Client
	closers []func()
}

// Close undoes Start: pools, then the token (revoked).
func (s *Service) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// Start logs in to Vault, reads the CA and the dependencies' secrets, builds the pools and
// the handler. Background work (token renewal, secret refresh, pool warm-up) ends with ctx.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger, redactor *redact.Redactor) (*Service, error) {
	var vc *vault.Client
	m := metrics.New(func() float64 { return vc.TokenTTL() })
	vc, err := vault.New(cfg, vault.Options{Redactor: redactor, Logger: log, Counters: m})
	if err != nil {
		return nil, err
	}
	svc := &Service{Vault: vc}
	if err := vc.Start(ctx); err != nil {
		return nil, err
	}
	svc.closers = append(svc.closers, vc.Close)
	go vc.KeepAlive(ctx)

	var trust *stores.Trust
	if cfg.CAFile != "" {
		trust, err = stores.LoadTrustFile(cfg.CAFile)
	} else {
		var pem []byte
		if pem, err = vc.CAChain(ctx); err == nil {
			trust, err = stores.LoadTrust(pem)
		}
	}
	if err != nil {
		svc.Close()
		return nil, err
	}

	store := secrets.New(vc.ReadKV, cfg.SecretTTL, nil, log, m)
	for _, dep := range config.Dependencies {
		if _, err := store.Get(ctx, dep); err != nil {
			svc.Close()
			return nil, fmt.Errorf("reading the secret of %s: %w", dep, err)
		}
	}
	go store.Run(ctx)

	pg := stores.NewPostgresPool(cfg, store, trust, log)
	my := stores.NewMySQLPool(cfg, store, trust, log)
	mg := stores.NewMongoPool(cfg, store, trust, log)
	rd := stores.NewRedisPool(cfg, store, trust, log)
	mq := stores.NewRabbitPool(cfg, store, trust, log)
	svc.closers = append(svc.closers, pg.Close, my.Close, mg.Close, rd.Close, mq.Close)

	items := map[string]httpapi.ItemStore{
		"postgres": stores.NewPostgresItems(pg),
		"mysql":    stores.NewMySQLItems(my),
		"mongodb":  stores.NewMongoItems(mg),
	}
	cluster := stores.NewCluster(rd)
	queues := stores.NewQueues(mq, log)

	probes := map[string]health.Probe{
		"vault": vaultProbe(vc, store),
		"redis": func(ctx context.Context) health.Outcome {
			state, err := cluster.Probe(ctx)
			if err != nil {
				return health.FromError(err)
			}
			if state != "ok" {
				return health.Outcome{Status: health.Unhealthy, Error: health.ErrNotReady, Reason: "cluster state is " + state}
			}
			return health.Outcome{}
		},
		"rabbitmq": func(ctx context.Context) health.Outcome { return health.FromError(queues.Probe(ctx)) },
	}
	for name, repo := range items {
		probes[name] = func(ctx context.Context) health.Outcome { return health.FromError(repo.Probe(ctx)) }
	}
	checker := health.NewChecker([]string{"vault", "postgres", "mysql", "mongodb", "redis", "rabbitmq"}, probes, cfg.HealthTimeout, m)

	deps := httpapi.Deps{
		Implementation: config.Implementation,
		Items:          items,
		Cache:          stores.NewCache(rd, cfg.CacheKeyPrefix),
		Queues:         queues,
		Cluster:        cluster,
		Secrets:        secrets.NewReader(store, config.Dependencies, cfg.KVMount),
		Health:         checker,
		Metrics:        m,
		CORSOrigins:    cfg.CORSOrigins,
		BodyLimit:      cfg.BodyLimit,
		Log:            log,
	}
	if cfg.RateLimit > 0 {
		limiter, err := ratelimit.New(rd, cfg.RateLimit, cfg.RateWindowSeconds)
		if err != nil {
			svc.Close()
			return nil, err
		}
		deps.Limiter = limiter
	}
	svc.Handler = httpapi.New(deps)

	// Connect every pool now, concurrently, without holding up the listeners: a server that is
	// down is connected on first use.
	go func() {
		for name, check := range checker.Check(ctx, nil).Checks {
			if check.Status != health.Healthy && name != "vault" {
				log.Warn("dependency not reachable at start; will connect on first use", "dependency", name)
			}
		}
	}()
	return svc, nil
}

// vaultProbe asks Vault's sys/health (no token, shared by concurrent checks), then reads the
// client's state, as devstack_client's health does: Vault unreachable while every secret is
// cached is degraded (else unhealthy, not_ready when sealed); stale secrets are degraded.
func vaultProbe(vc *vault.Client, store *secrets.Store) health.Probe {
	return func(ctx context.Context) health.Outcome {
		vc.Probe(ctx)
		status := vc.Status()
		states := store.States()
		stale := false
		for _, s := range states {
			stale = stale || s.Stale
		}
		allCached := len(states) >= len(config.Dependencies)
		if !status.Reachable {
			if allCached {
				return health.Outcome{Status: health.Degraded, Error: health.ErrUnavailable, Reason: "unreachable; serving cached credentials"}
			}
			class := health.ErrUnavailable
			if status.LastError == "503 sealed or not ready" {
				class = health.ErrNotReady
			}
			return health.Outcome{Status: health.Unhealthy, Error: class, Reason: "unreachable"}
		}
		if !status.Authenticated {
			if allCached { // refusing our credentials, still serving from the cache
				return health.Outcome{Status: health.Degraded, Reason: "no valid token; serving cached credentials"}
			}
			return health.Outcome{Status: health.Unhealthy, Reason: "no valid token"}
		}
		if stale {
			return health.Outcome{Status: health.Degraded, Reason: "stale secrets"}
		}
		return health.Outcome{}
	}
}

// run is the whole program: configuration, logging, the service, both listeners, and a
// graceful shutdown when ctx ends.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	redactor := redact.New()
	log := slog.New(redact.NewHandler(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: levels[cfg.LogLevel]}), redactor)).
		With("service", config.Implementation)
	redis.SetLogger(redisLogger{log})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	svc, err := Start(ctx, cfg, log, redactor)
	if err != nil {
		return err
	}
	defer svc.Close()

	servers := []*http.Server{}
	listeners := []net.Listener{}
	addr := func(port int) string { return net.JoinHostPort(cfg.APIHost, strconv.Itoa(port)) }
	newServer := func() *http.Server {
		return &http.Server{
			Handler:           svc.Handler,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
	}
	plain, err := net.Listen("tcp", addr(cfg.HTTPPort))
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr(cfg.HTTPPort), err)
	}
	// net/http's own answer to a request it cannot parse becomes a problem document (httpapi/refused.go).
	servers, listeners = append(servers, newServer()), append(listeners, httpapi.RefusedRequests(plain, log, readHeaderTimeout))
	if cfg.TLSEnabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("the HTTPS certificate: %w", err)
		}
		secure, err := net.Listen("tcp", addr(cfg.HTTPSPort))
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr(cfg.HTTPSPort), err)
		}
		srv := newServer()
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		servers = append(servers, srv)
		listeners = append(listeners, httpapi.RefusedRequests(tls.NewListener(secure, srv.TLSConfig), log, readHeaderTimeout))
	} else {
		log.Warn("no TLS certificate configured: serving HTTP only", "port", cfg.HTTPPort)
	}

	failed := make(chan error, len(servers))
	for i, srv := range servers {
		go func() {
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				failed <- err
			}
		}()
	}
	log.Info("devstack-api started", "http_port", cfg.HTTPPort, "https_port", cfg.HTTPSPort, "tls", cfg.TLSEnabled())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-failed:
	}
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdown)
	}
	cancel()
	log.Info("devstack-api stopped")
	return serveErr
}
