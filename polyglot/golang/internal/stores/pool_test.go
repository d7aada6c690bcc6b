package stores

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/config"
	"devstack/polyglot/golang/internal/secrets"
	"devstack/polyglot/golang/internal/vault"
)

// fakeClient stands for a driver's client; unreachable is what the driver would know.
type fakeClient struct{ unreachable atomic.Bool }

// server is a port that accepts connections (up) or refuses them (down), on one address.
type server struct {
	t    *testing.T
	addr string
	l    net.Listener
}

func newServer(t *testing.T) *server {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, addr: l.Addr().String(), l: l}
	go s.accept(l)
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *server) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.Close()
	}
}

func (s *server) stop() {
	if s.l != nil {
		_ = s.l.Close()
		s.l = nil
	}
}

func (s *server) start() {
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.l = l
	go s.accept(l)
}

func newTestPool(t *testing.T, addr string, client *fakeClient) *Pool[*fakeClient] {
	t.Helper()
	fetch := func(context.Context, string) (*vault.Secret, error) {
		return &vault.Secret{Data: map[string]any{}, Version: 1}, nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := secrets.New(fetch, time.Hour, time.Now, log, nil)
	cfg := config.Config{OperationTimeout: 300 * time.Millisecond, ConnectTimeout: 200 * time.Millisecond}
	return NewPool(Driver[*fakeClient]{
		Name:             "mongodb",
		Build:            func(context.Context, *vault.Secret) (*fakeClient, error) { return client, nil },
		Close:            func(*fakeClient) {},
		Target:           func(*vault.Secret) string { return addr },
		KnownUnreachable: func(c *fakeClient) bool { return c.unreachable.Load() },
	}, cfg, store, log)
}

func refused(context.Context, *fakeClient) (string, error) {
	return "", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

func waitForDeadline(ctx context.Context, _ *fakeClient) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

func assertDependency(t *testing.T, err error, timeout bool) {
	t.Helper()
	dep, ok := apperr.AsDependency(err)
	if !ok || dep.Dependency != "mongodb" || dep.Timeout != timeout {
		t.Fatalf("error %v, want a mongodb %s", err, map[bool]string{true: "timeout", false: "unavailable"}[timeout])
	}
}

// The outage policy of docs/api.md: once unavailable, a refused port answers at once, without
// the operation (so without the driver's own waits); an accepted port runs it, and its success
// ends the down state.
func TestADependencyDownIsCheckedByItsPortFirst(t *testing.T) {
	srv := newServer(t)
	pool := newTestPool(t, srv.addr, &fakeClient{})
	ctx := context.Background()

	_, err := Run(ctx, pool, "query", refused)
	assertDependency(t, err, false)
	if !pool.Down() {
		t.Fatal("an unavailable dependency is not marked down")
	}

	srv.stop()
	ran := false
	started := time.Now()
	_, err = Run(ctx, pool, "query", func(ctx context.Context, c *fakeClient) (string, error) {
		ran = true
		return waitForDeadline(ctx, c)
	})
	assertDependency(t, err, false)
	if ran || time.Since(started) > 150*time.Millisecond {
		t.Fatalf("a refused port ran the operation (%v) or waited %v", ran, time.Since(started))
	}

	srv.start()
	value, err := Run(ctx, pool, "query", func(context.Context, *fakeClient) (string, error) { return "ok", nil })
	if err != nil || value != "ok" || pool.Down() {
		t.Fatalf("back: %q %v, down %v", value, err, pool.Down())
	}
}

// A timeout is an outage only when the driver knows it cannot reach the server (MongoDB's
// server selection); otherwise it is a slow server, and no port check could tell.
func TestATimeoutIsAnOutageOnlyWhenTheClientKnowsItsAttemptsFail(t *testing.T) {
	srv := newServer(t)
	client := &fakeClient{}
	pool := newTestPool(t, srv.addr, client)
	ctx := context.Background()

	_, err := Run(ctx, pool, "query", waitForDeadline)
	assertDependency(t, err, true)
	if pool.Down() {
		t.Fatal("a slow server was marked down")
	}

	client.unreachable.Store(true)
	_, err = Run(ctx, pool, "query", waitForDeadline)
	assertDependency(t, err, true)
	if !pool.Down() {
		t.Fatal("a timeout while the client knows the server is unreachable did not mark it down")
	}
	srv.stop()
	started := time.Now()
	_, err = Run(ctx, pool, "query", waitForDeadline)
	assertDependency(t, err, false)
	if elapsed := time.Since(started); elapsed > 150*time.Millisecond {
		t.Fatalf("down and refused, yet answered after %v", elapsed)
	}
}

// Errors that are not the dependency's own outage leave the state alone.
func TestOtherErrorsDoNotMarkTheDependencyDown(t *testing.T) {
	srv := newServer(t)
	pool := newTestPool(t, srv.addr, &fakeClient{})
	for _, err := range []error{
		apperr.NotFound("no such item"),
		apperr.Unavailable("vault", "sealed", nil),
	} {
		_, got := Run(context.Background(), pool, "get", func(context.Context, *fakeClient) (string, error) { return "", err })
		if !errors.Is(got, err) || pool.Down() {
			t.Fatalf("%v: returned %v, down %v", err, got, pool.Down())
		}
	}
}

// A caller that goes away (its client hung up) is no failure of the dependency: the error stays a
// cancellation (the HTTP layer logs it as 499, not 503/504), the client is not reset and the
// dependency is not marked down, even when the client knows its server is unreachable.
func TestACallerGoneIsNotADependencyFailure(t *testing.T) {
	srv := newServer(t)
	client := &fakeClient{}
	client.unreachable.Store(true)
	resets := 0
	pool := newTestPool(t, srv.addr, client)
	pool.d.OnError = func(*fakeClient, error) { resets++ }
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	_, err := Run(ctx, pool, "publish", waitForDeadline)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled caller got %v, want context.Canceled", err)
	}
	if _, isDependency := apperr.AsDependency(err); isDependency {
		t.Fatalf("a cancelled caller was reported as the dependency's failure: %v", err)
	}
	if pool.Down() || resets != 0 {
		t.Fatalf("a cancelled caller marked the dependency down (%v) or reset its client (%d)", pool.Down(), resets)
	}
}
