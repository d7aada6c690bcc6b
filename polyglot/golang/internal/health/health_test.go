package health

import (
	"context"
	"errors"
	"testing"
	"time"

	"devstack/polyglot/golang/internal/apperr"
)

func TestAggregateIsTheWorst(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, Healthy},
		{[]string{Healthy, Healthy}, Healthy},
		{[]string{Healthy, Degraded}, Degraded},
		{[]string{Unhealthy, Degraded, Healthy}, Unhealthy},
	}
	for _, tt := range tests {
		if got := Aggregate(tt.in); got != tt.want {
			t.Errorf("Aggregate(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestChecksRunConcurrentlyWithinTheirBudget(t *testing.T) {
	probes := map[string]Probe{
		"vault":    func(context.Context) Outcome { return Outcome{Status: Degraded, Error: ErrUnavailable} },
		"postgres": func(context.Context) Outcome { return Outcome{} },
		"redis":    func(ctx context.Context) Outcome { <-ctx.Done(); time.Sleep(time.Second); return Outcome{} },
		"mysql":    func(context.Context) Outcome { panic("boom") },
		"mongodb":  func(context.Context) Outcome { return FromError(apperr.Timeout("mongodb", "x", nil)) },
		"rabbitmq": func(context.Context) Outcome { return FromError(errors.New("refused")) },
	}
	c := NewChecker([]string{"vault", "postgres", "mysql", "mongodb", "redis", "rabbitmq"}, probes, 50*time.Millisecond, nil)
	report := c.Check(context.Background(), nil)
	want := map[string][2]string{
		"vault": {Degraded, ErrUnavailable}, "postgres": {Healthy, ""}, "redis": {Unhealthy, ErrTimeout},
		"mysql": {Unhealthy, ErrUnavailable}, "mongodb": {Unhealthy, ErrTimeout}, "rabbitmq": {Unhealthy, ErrUnavailable},
	}
	for name, w := range want {
		check := report.Checks[name]
		got := ""
		if check.Error != nil {
			got = *check.Error
		}
		if check.Status != w[0] || got != w[1] {
			t.Errorf("%s: %s %q, want %s %q", name, check.Status, got, w[0], w[1])
		}
	}
	if report.Status != Unhealthy || report.HTTPStatus() != 503 {
		t.Errorf("report %s", report.Status)
	}
	one := c.Check(context.Background(), []string{"postgres"})
	if len(one.Checks) != 1 || one.HTTPStatus() != 200 {
		t.Errorf("one check: %+v", one)
	}
}
