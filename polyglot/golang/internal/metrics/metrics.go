// Package metrics holds the service's Prometheus collectors in a registry of its own:
// devstack_http_requests_total{method,route,status} and
// devstack_http_request_duration_seconds{method,route} by route template (never a raw path),
// as the contract requires, plus the Vault, secret-cache and health metrics the Python library
// exports, and the Go runtime and process collectors.
package metrics

import (
	"bytes"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// ContentType is the text format the contract names (0.0.4).
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Unmatched labels a request that matched no route.
const Unmatched = "<unmatched>"

var healthValue = map[string]float64{"healthy": 1, "degraded": 0.5, "unhealthy": 0}

// Metrics is every collector.
type Metrics struct {
	Registry        *prometheus.Registry
	HTTPRequests    *prometheus.CounterVec
	HTTPDuration    *prometheus.HistogramVec
	HTTPInFlight    *prometheus.GaugeVec
	DependencyGauge *prometheus.GaugeVec
	DependencyCheck *prometheus.HistogramVec
	VaultRequests   *prometheus.CounterVec
	VaultLogins     *prometheus.CounterVec
	VaultRenewals   *prometheus.CounterVec
	SecretCacheReqs *prometheus.CounterVec
}

// New registers everything in a fresh registry; tokenTTL (may be nil) feeds the token gauge.
func New(tokenTTL func() float64) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devstack_http_requests_total", Help: "HTTP requests, by route template",
		}, []string{"method", "route", "status"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "devstack_http_request_duration_seconds", Help: "HTTP request latency, by route template",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		HTTPInFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "devstack_http_requests_in_flight", Help: "HTTP requests being served, by route template",
		}, []string{"method", "route"}),
		DependencyGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "devstack_dependency_health", Help: "Last health of each dependency: 1 healthy, 0.5 degraded, 0 unhealthy",
		}, []string{"dependency"}),
		DependencyCheck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "devstack_dependency_check_duration_seconds", Help: "Latency of each dependency's health probe",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}, []string{"dependency"}),
		VaultRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devstack_vault_requests_total", Help: "Requests sent to Vault, by operation",
		}, []string{"operation"}),
		VaultLogins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devstack_vault_logins_total", Help: "AppRole logins, by result",
		}, []string{"result"}),
		VaultRenewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devstack_vault_renewals_total", Help: "Token renewals, by result",
		}, []string{"result"}),
		SecretCacheReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devstack_secret_cache_requests_total", Help: "Secret reads served by the cache, by result (hit, miss, stale)",
		}, []string{"result"}),
	}
	r.MustRegister(m.HTTPRequests, m.HTTPDuration, m.HTTPInFlight, m.DependencyGauge, m.DependencyCheck,
		m.VaultRequests, m.VaultLogins, m.VaultRenewals, m.SecretCacheReqs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if tokenTTL != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "devstack_vault_token_ttl_seconds", Help: "Seconds left before the current Vault token expires (0: none)",
		}, tokenTTL))
	}
	return m
}

// VaultRequest implements vault.Counters.
func (m *Metrics) VaultRequest(operation string) { m.VaultRequests.WithLabelValues(operation).Inc() }

// VaultLogin implements vault.Counters.
func (m *Metrics) VaultLogin(result string) { m.VaultLogins.WithLabelValues(result).Inc() }

// VaultRenewal implements vault.Counters.
func (m *Metrics) VaultRenewal(result string) { m.VaultRenewals.WithLabelValues(result).Inc() }

// SecretCache implements secrets.Counters.
func (m *Metrics) SecretCache(result string) { m.SecretCacheReqs.WithLabelValues(result).Inc() }

// Health implements health.Recorder.
func (m *Metrics) Health(dependency, status string, seconds float64) {
	m.DependencyGauge.WithLabelValues(dependency).Set(healthValue[status])
	m.DependencyCheck.WithLabelValues(dependency).Observe(seconds)
}

// Render is the exposition text in format 0.0.4.
func (m *Metrics) Render() ([]byte, error) {
	families, err := m.Registry.Gather()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// Handler serves Render.
func (m *Metrics) Handler(w http.ResponseWriter) {
	body, err := m.Render()
	if err != nil {
		http.Error(w, "metrics unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(200)
	_, _ = w.Write(body)
}
