// Package health runs one probe per dependency, all at once, each within its own budget, and
// reports the contract's HealthReport: each check healthy, degraded or unhealthy, with an error
// class (unavailable, timeout, not_ready), and the aggregate the worst of them.
package health

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"devstack/polyglot/golang/internal/apperr"
)

// Statuses and error classes of the contract.
const (
	Healthy   = "healthy"
	Degraded  = "degraded"
	Unhealthy = "unhealthy"

	ErrUnavailable = "unavailable"
	ErrTimeout     = "timeout"
	ErrNotReady    = "not_ready"
)

// Outcome is what a probe found.
type Outcome struct {
	Status string // "" means healthy
	Error  string // "" defaults to unavailable when not healthy
	Reason string // for logs only
}

// Probe checks one dependency through the same path its feature uses.
type Probe func(ctx context.Context) Outcome

// Check is the contract's HealthCheck.
type Check struct {
	Status    string  `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	Error     *string `json:"error"`
}

// Report is the contract's HealthReport.
type Report struct {
	Status string           `json:"status"`
	Checks map[string]Check `json:"checks"`
}

// HTTPStatus is 200 when healthy, 503 otherwise.
func (r Report) HTTPStatus() int {
	if r.Status == Healthy {
		return 200
	}
	return 503
}

var order = map[string]int{Healthy: 0, Degraded: 1, Unhealthy: 2}

// Aggregate is the worst status.
func Aggregate(statuses []string) string {
	worst := Healthy
	for _, s := range statuses {
		if order[s] > order[worst] {
			worst = s
		}
	}
	return worst
}

// Recorder is the metrics hook (nil-safe).
type Recorder interface {
	Health(dependency, status string, seconds float64)
}

// Checker runs the probes.
type Checker struct {
	Names    []string // in the contract's order
	probes   map[string]Probe
	timeout  time.Duration
	recorder Recorder
}

// NewChecker takes the probes in order.
func NewChecker(names []string, probes map[string]Probe, timeout time.Duration, recorder Recorder) *Checker {
	return &Checker{Names: names, probes: probes, timeout: timeout, recorder: recorder}
}

// Has reports whether name is a dependency with a probe.
func (c *Checker) Has(name string) bool { _, ok := c.probes[name]; return ok }

// Check runs the named probes (all when names is nil) concurrently; it never fails.
func (c *Checker) Check(ctx context.Context, names []string) Report {
	if names == nil {
		names = c.Names
	}
	checks := make([]Check, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			checks[i] = c.one(ctx, name)
		}()
	}
	wg.Wait()
	report := Report{Checks: map[string]Check{}}
	statuses := make([]string, len(names))
	for i, name := range names {
		report.Checks[name] = checks[i]
		statuses[i] = checks[i].Status
	}
	report.Status = Aggregate(statuses)
	return report
}

func (c *Checker) one(parent context.Context, name string) Check {
	started := time.Now()
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	done := make(chan Outcome, 1)
	go func() {
		defer func() {
			if recover() != nil {
				done <- Outcome{Status: Unhealthy, Reason: "the probe failed"}
			}
		}()
		done <- c.probes[name](ctx)
	}()
	var out Outcome
	select {
	case out = <-done:
	case <-ctx.Done():
		out = Outcome{Status: Unhealthy, Error: ErrTimeout, Reason: "timed out"}
	}
	if out.Status == "" {
		out.Status = Healthy
	}
	elapsed := time.Since(started)
	if c.recorder != nil {
		c.recorder.Health(name, out.Status, elapsed.Seconds())
	}
	check := Check{Status: out.Status, LatencyMS: math.Round(elapsed.Seconds()*1e6) / 1e3}
	if out.Status != Healthy {
		class := out.Error
		if class == "" {
			class = ErrUnavailable
		}
		check.Error = &class
	}
	return check
}

// FromError is the outcome of a probe that returned err (nil: healthy).
func FromError(err error) Outcome {
	if err == nil {
		return Outcome{Status: Healthy}
	}
	if dep, ok := apperr.AsDependency(err); ok && dep.Timeout {
		return Outcome{Status: Unhealthy, Error: ErrTimeout, Reason: err.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Outcome{Status: Unhealthy, Error: ErrTimeout, Reason: err.Error()}
	}
	return Outcome{Status: Unhealthy, Error: ErrUnavailable, Reason: err.Error()}
}
