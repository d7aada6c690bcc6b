package vault

import (
	"testing"
	"time"
)

func TestPlanRefresh(t *testing.T) {
	t0 := time.Unix(1000, 0)
	hour := time.Hour
	tests := []struct {
		name   string
		lease  Lease
		now    time.Time
		action Action
		at     time.Time
	}{
		{"renew at two thirds", Lease{TTL: hour, LoginTTL: hour, Renewable: true, RefreshedAt: t0}, t0, ActionRenew, t0.Add(40 * time.Minute)},
		{"not renewable: log in", Lease{TTL: hour, LoginTTL: hour, RefreshedAt: t0}, t0, ActionLogin, t0.Add(40 * time.Minute)},
		{"capped renewal: log in", Lease{TTL: 30 * time.Minute, LoginTTL: hour, Renewable: true, RefreshedAt: t0}, t0, ActionLogin, t0.Add(20 * time.Minute)},
		{"expired: log in now", Lease{TTL: hour, LoginTTL: hour, Renewable: true, RefreshedAt: t0}, t0.Add(2 * hour), ActionLogin, t0.Add(2 * hour)},
		{"never expires", Lease{TTL: 0, Renewable: true, RefreshedAt: t0}, t0, ActionNone, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			action, at := PlanRefresh(tt.lease, tt.now, 2.0/3.0)
			if action != tt.action || !at.Equal(tt.at) {
				t.Errorf("got %s at %v, want %s at %v", action, at, tt.action, tt.at)
			}
		})
	}
}

func TestBackoffIsJitteredAndCapped(t *testing.T) {
	tests := []struct {
		attempt  int
		rnd      float64
		expected time.Duration
	}{
		{1, 0, 250 * time.Millisecond},
		{1, 1, 500 * time.Millisecond},
		{3, 1, 2 * time.Second},
		{20, 0, 15 * time.Second},
		{20, 1, 30 * time.Second},
	}
	for _, tt := range tests {
		got := Backoff(tt.attempt, 500*time.Millisecond, 30*time.Second, func() float64 { return tt.rnd })
		if got != tt.expected {
			t.Errorf("Backoff(%d, rnd %v) = %v, want %v", tt.attempt, tt.rnd, got, tt.expected)
		}
	}
}
