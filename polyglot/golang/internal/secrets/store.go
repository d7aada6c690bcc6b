// Package secrets caches KV secrets with a TTL, refreshes them in the background before they
// expire, serves the last good value through a Vault outage (marked stale), and tells
// subscribers when a new version appears, as devstack_client's secretstore.py does. At steady
// state a request never causes a Vault call.
package secrets

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/vault"
)

// Fetch reads a secret from Vault.
type Fetch func(ctx context.Context, path string) (*vault.Secret, error)

// State is one cached secret, for health.
type State struct {
	Path    string
	Version int
	Age     time.Duration
	Stale   bool
	Error   string
}

type entry struct {
	secret    *vault.Secret
	fetchedAt time.Time
	failed    bool
	err       string
}

type flight struct {
	done   chan struct{}
	secret *vault.Secret
	err    error
}

// Counters is the metrics hook (nil-safe).
type Counters interface{ SecretCache(result string) }

// Store is safe for concurrent use.
type Store struct {
	fetch    Fetch
	ttl      time.Duration
	now      func() time.Time
	log      *slog.Logger
	counters Counters

	mu       sync.Mutex
	entries  map[string]*entry
	inflight map[string]*flight
	subs     map[string][]func(*vault.Secret)
}

// New makes a store; now and log may be nil.
func New(fetch Fetch, ttl time.Duration, now func() time.Time, log *slog.Logger, counters Counters) *Store {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Store{
		fetch: fetch, ttl: ttl, now: now, log: log, counters: counters,
		entries: map[string]*entry{}, inflight: map[string]*flight{}, subs: map[string][]func(*vault.Secret){},
	}
}

func (s *Store) count(result string) {
	if s.counters != nil {
		s.counters.SecretCache(result)
	}
}

// Get answers from the cache while fresh, else reads Vault; through an outage the last good
// value is served.
func (s *Store) Get(ctx context.Context, path string) (*vault.Secret, error) {
	s.mu.Lock()
	e := s.entries[path]
	if e != nil && s.now().Sub(e.fetchedAt) < s.ttl {
		s.mu.Unlock()
		s.count("hit")
		return e.secret, nil
	}
	s.mu.Unlock()
	secret, err := s.Refresh(ctx, path, 0)
	if err != nil {
		if _, isDep := apperr.AsDependency(err); isDep && e != nil {
			s.count("stale")
			return e.secret, nil
		}
		return nil, err
	}
	s.count("miss")
	return secret, nil
}

// Refresh reads Vault now (unless the cached copy is younger than maxAge), one read per path
// at a time however many callers wait.
func (s *Store) Refresh(ctx context.Context, path string, maxAge time.Duration) (*vault.Secret, error) {
	s.mu.Lock()
	e := s.entries[path]
	if e != nil && maxAge > 0 && s.now().Sub(e.fetchedAt) < maxAge {
		s.mu.Unlock()
		return e.secret, nil
	}
	if f, ok := s.inflight[path]; ok {
		s.mu.Unlock()
		select {
		case <-f.done:
			return f.secret, f.err
		case <-ctx.Done():
			return nil, apperr.Timeout("vault", "secret read timed out", ctx.Err())
		}
	}
	f := &flight{done: make(chan struct{})}
	s.inflight[path] = f
	s.mu.Unlock()

	// Detached from the caller's cancellation: the waiters share this read.
	secret, err := s.fetch(context.WithoutCancel(ctx), path)
	var notify []func(*vault.Secret)
	s.mu.Lock()
	delete(s.inflight, path)
	if err != nil {
		if _, isDep := apperr.AsDependency(err); isDep && s.entries[path] != nil {
			s.entries[path].failed, s.entries[path].err = true, err.Error()
		}
	} else {
		previous := s.entries[path]
		s.entries[path] = &entry{secret: secret, fetchedAt: s.now()}
		if previous != nil && previous.secret.Version != secret.Version {
			s.log.Info("secret version changed", "path", path, "old_version", previous.secret.Version, "new_version", secret.Version)
			notify = append(notify, s.subs[path]...)
		}
	}
	s.mu.Unlock()
	f.secret, f.err = secret, err
	close(f.done)
	for _, fn := range notify {
		fn(secret)
	}
	return secret, err
}

// Subscribe calls fn with every new version of path.
func (s *Store) Subscribe(path string, fn func(*vault.Secret)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[path] = append(s.subs[path], fn)
}

// States describes every cached secret, sorted by path.
func (s *Store) States() []State {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]State, 0, len(s.entries))
	for path, e := range s.entries {
		age := now.Sub(e.fetchedAt)
		out = append(out, State{Path: path, Version: e.secret.Version, Age: age, Stale: e.failed || age >= s.ttl, Error: e.err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (s *Store) nextDue() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	half := s.ttl / 2
	next := now.Add(half)
	for _, e := range s.entries {
		due := e.fetchedAt.Add(half)
		if e.failed {
			due = now.Add(min(half, time.Second))
		}
		if due.Before(next) {
			next = due
		}
	}
	return max(50*time.Millisecond, next.Sub(now))
}

// Run re-reads every cached secret once it is half its TTL old, until ctx ends.
func (s *Store) Run(ctx context.Context) {
	for {
		timer := time.NewTimer(s.nextDue())
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		s.mu.Lock()
		now := s.now()
		var due []string
		for path, e := range s.entries {
			if e.failed || now.Sub(e.fetchedAt) >= s.ttl/2 {
				due = append(due, path)
			}
		}
		s.mu.Unlock()
		sort.Strings(due)
		for _, path := range due {
			_, err := s.Refresh(ctx, path, 0)
			if err == nil {
				continue
			}
			if _, isDep := apperr.AsDependency(err); isDep {
				s.mu.Lock() // Vault is down: mark the rest stale too, and try again soon
				for _, other := range due {
					if e := s.entries[other]; e != nil {
						e.failed, e.err = true, err.Error()
					}
				}
				s.mu.Unlock()
				s.log.Warn("secret refresh failed; serving cached values", "error", err)
				break
			}
			if apperr.IsNotFound(err) {
				s.log.Warn("a cached secret was deleted from Vault; keeping it", "path", path)
				s.mu.Lock()
				if e := s.entries[path]; e != nil {
					e.fetchedAt = now
				}
				s.mu.Unlock()
			}
		}
	}
}
