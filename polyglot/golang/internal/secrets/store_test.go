package secrets

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/vault"
)

type fakeFetch struct {
	calls   atomic.Int32
	version atomic.Int32
	down    atomic.Bool
	delay   time.Duration
}

func (f *fakeFetch) fetch(_ context.Context, path string) (*vault.Secret, error) {
	f.calls.Add(1)
	time.Sleep(f.delay)
	if f.down.Load() {
		return nil, apperr.Unavailable("vault", "kv_read: unreachable", nil)
	}
	if path == "missing" {
		return nil, apperr.NotFound("secret %s does not exist", apperr.Repr(path))
	}
	return &vault.Secret{Path: path, Data: map[string]any{"password": "pw"}, Version: int(f.version.Load())}, nil
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestHitsMissesAndStaleValues(t *testing.T) {
	f := &fakeFetch{}
	f.version.Store(1)
	c := &clock{now: time.Unix(0, 0)}
	s := New(f.fetch, time.Minute, c.Now, nil, nil)
	ctx := context.Background()
	for range 5 {
		if _, err := s.Get(ctx, "postgres"); err != nil {
			t.Fatal(err)
		}
	}
	if f.calls.Load() != 1 {
		t.Fatalf("fetches = %d, want 1 (then cache hits)", f.calls.Load())
	}
	c.Advance(2 * time.Minute)
	f.down.Store(true)
	secret, err := s.Get(ctx, "postgres")
	if err != nil || secret.Version != 1 {
		t.Fatalf("through an outage the last good value is served: %v %v", secret, err)
	}
	if states := s.States(); len(states) != 1 || !states[0].Stale {
		t.Errorf("states %+v, want the secret stale", states)
	}
	if _, err := s.Get(ctx, "never-read"); err == nil {
		t.Error("a secret never read cannot be served through an outage")
	}
	f.down.Store(false)
	if _, err := s.Get(ctx, "postgres"); err != nil {
		t.Fatal(err)
	}
	if s.States()[0].Stale {
		t.Error("still stale after a successful read")
	}
	if _, err := s.Get(ctx, "missing"); !apperr.IsNotFound(err) {
		t.Errorf("missing: %v", err)
	}
}

func TestOneReadInFlightPerPath(t *testing.T) {
	f := &fakeFetch{delay: 50 * time.Millisecond}
	s := New(f.fetch, time.Minute, nil, nil, nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Get(context.Background(), "redis"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.calls.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1 for 20 concurrent callers", n)
	}
}

func TestSubscribersHearOfNewVersions(t *testing.T) {
	f := &fakeFetch{}
	f.version.Store(1)
	s := New(f.fetch, time.Minute, nil, nil, nil)
	var seen []int
	s.Subscribe("mysql", func(sec *vault.Secret) { seen = append(seen, sec.Version) })
	ctx := context.Background()
	_, _ = s.Refresh(ctx, "mysql", 0)
	_, _ = s.Refresh(ctx, "mysql", 0) // same version: nothing to say
	f.version.Store(2)
	_, _ = s.Refresh(ctx, "mysql", 0)
	if len(seen) != 1 || seen[0] != 2 {
		t.Errorf("notified of %v, want [2]", seen)
	}
	// A recent copy is enough for a caller that allows an age (an auth failure's re-read).
	calls := f.calls.Load()
	_, _ = s.Refresh(ctx, "mysql", time.Minute)
	if f.calls.Load() != calls {
		t.Error("a refresh with max age re-read a fresh secret")
	}
}

func TestBackgroundRefreshReReadsBeforeExpiry(t *testing.T) {
	f := &fakeFetch{}
	s := New(f.fetch, 200*time.Millisecond, nil, nil, nil)
	if _, err := s.Get(context.Background(), "rabbitmq"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 450*time.Millisecond)
	defer cancel()
	s.Run(ctx)
	if f.calls.Load() < 2 {
		t.Errorf("fetches = %d: the refresher did not re-read the secret", f.calls.Load())
	}
}
