package vault

import (
	"math"
	"math/rand/v2"
	"time"
)

// Lease is what Vault granted the current token.
type Lease struct {
	TTL         time.Duration // granted by the last login or renewal (0: never expires)
	LoginTTL    time.Duration // granted by the login: what a renewal should give again
	Renewable   bool
	RefreshedAt time.Time
}

// ExpiresAt is when the token dies (the zero time when it never does).
func (l Lease) ExpiresAt() time.Time {
	if l.TTL <= 0 {
		return time.Time{}
	}
	return l.RefreshedAt.Add(l.TTL)
}

// Action is what to do to the token next.
type Action string

// The token actions.
const (
	ActionNone  Action = "none"
	ActionRenew Action = "renew"
	ActionLogin Action = "login"
)

// cappedTolerance: a renewal granting under 90% of the login's TTL means the max TTL is near.
const cappedTolerance = 0.9

// PlanRefresh is the pure token rule, the same as devstack_client's plan_refresh: renew at
// fraction of the lease; log in instead when the token is not renewable, when the last renewal
// was capped (max TTL near), or at once when the token has already expired.
func PlanRefresh(l Lease, now time.Time, fraction float64) (Action, time.Time) {
	if l.TTL <= 0 {
		return ActionNone, time.Time{}
	}
	at := l.RefreshedAt.Add(time.Duration(fraction * float64(l.TTL)))
	if !now.Before(l.ExpiresAt()) {
		return ActionLogin, now
	}
	capped := float64(l.TTL) < float64(l.LoginTTL)*cappedTolerance
	if capped || !l.Renewable {
		return ActionLogin, at
	}
	return ActionRenew, at
}

// Backoff is exponential with jitter: between half and all of min(max, initial*2^(n-1)).
func Backoff(attempt int, initial, maximum time.Duration, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	ceiling := math.Min(float64(maximum), float64(initial)*math.Pow(2, float64(max(0, attempt-1))))
	return time.Duration(ceiling/2 + rnd()*ceiling/2)
}
