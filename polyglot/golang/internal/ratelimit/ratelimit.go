// Package ratelimit counts requests per client in the Redis Cluster, with the same keys and
// algorithm as the Python apps (devstack_client/ratelimit.py), so every implementation shares
// one budget: a fixed window aligned to the epoch; window n covers [n*w, (n+1)*w) seconds, and
// a client's count in it is the key devstack:ratelimit:<client>:<n>, incremented once per
// request and expiring a second after the window.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"devstack/polyglot/golang/internal/stores"
)

// Prefix of every counter key (shared with the Python apps).
const Prefix = "devstack:ratelimit:"

var hitScript = redis.NewScript(`
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return count
`)

// Decision is the outcome of one request against a client's budget.
type Decision struct {
	Allowed       bool
	Limit         int
	WindowSeconds int
	Remaining     int
	ResetSeconds  int
}

// WindowPosition is the index of the window now falls in and the whole seconds (>= 1) left.
func WindowPosition(now time.Time, window int) (int64, int) {
	seconds := float64(now.UnixNano()) / 1e9
	index := math.Floor(seconds / float64(window))
	reset := int(math.Ceil((index+1)*float64(window) - seconds))
	return int64(index), max(1, reset)
}

// Decide turns a count into a decision.
func Decide(count int64, limit, window, reset int) Decision {
	return Decision{
		Allowed: count <= int64(limit), Limit: limit, WindowSeconds: window,
		Remaining: int(max(0, int64(limit)-count)), ResetSeconds: reset,
	}
}

// Limiter is `limit` requests per `window` seconds per client.
type Limiter struct {
	pool   *stores.Pool[*redis.ClusterClient]
	Limit  int
	Window int
	Now    func() time.Time
}

// New makes a limiter over the Redis pool.
func New(pool *stores.Pool[*redis.ClusterClient], limit, window int) (*Limiter, error) {
	if limit < 1 || window < 1 {
		return nil, errors.New("a rate limit is at least 1 request per window of at least 1 second")
	}
	return &Limiter{pool: pool, Limit: limit, Window: window, Now: time.Now}, nil
}

// Key is the Redis key counting client's requests in window index.
func Key(client string, index int64) string { return fmt.Sprintf("%s%s:%d", Prefix, client, index) }

// Hit counts one request of client; an error means Redis could not be asked.
func (l *Limiter) Hit(ctx context.Context, client string) (Decision, error) {
	index, reset := WindowPosition(l.Now(), l.Window)
	count, err := stores.Run(ctx, l.pool, "rate limit", func(ctx context.Context, rc *redis.ClusterClient) (int64, error) {
		return hitScript.Run(ctx, rc, []string{Key(client, index)}, l.Window+1).Int64()
	})
	if err != nil {
		return Decision{}, err
	}
	return Decide(count, l.Limit, l.Window, reset), nil
}
