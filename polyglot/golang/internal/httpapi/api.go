// Package httpapi serves every operation of openapi/devstack.yaml with gin, with the same
// behaviour as the Python apps (docs/api.md): problem documents for every error, the body
// checks in the contract's order (413, 415, 400, 422), X-Request-ID kept or made, metrics by
// route template, the optional Redis rate limit on /examples/**, CORS when configured, and a
// recovered panic answered as a 500 problem document (logged with the request id).
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"devstack/polyglot/golang/internal/health"
	"devstack/polyglot/golang/internal/metrics"
	"devstack/polyglot/golang/internal/ratelimit"
	"devstack/polyglot/golang/internal/secrets"
	"devstack/polyglot/golang/internal/stores"
)

// ContractVersion is info.version of the contract this serves.
const ContractVersion = "1.0.0"

// ItemStore is one database's items.
type ItemStore = stores.Items

// CacheStore is the cache use case.
type CacheStore interface {
	Get(ctx context.Context, key string) (stores.CacheEntry, error)
	Put(ctx context.Context, key, value string, ttl *int64) (stores.CacheEntry, bool, error)
	Delete(ctx context.Context, key string) error
}

// QueueStore is the messaging use case.
type QueueStore interface {
	Publish(ctx context.Context, queue string, payload []byte) (stores.PublishResult, error)
	// Consume leaves the messages unacknowledged until settle is called.
	Consume(ctx context.Context, queue string, max int) (stores.ConsumeResult, stores.Settle, error)
	Inspect(ctx context.Context, queue string) (stores.QueueInfo, error)
}

// ClusterView is the Redis cluster use case.
type ClusterView interface {
	Nodes(ctx context.Context) ([]stores.RedisNode, error)
	Slots(ctx context.Context) (stores.ClusterSlots, error)
	Info(ctx context.Context) (stores.ClusterInfo, error)
	NodeInfo(ctx context.Context, node string) (stores.NodeInfo, error)
}

// SecretReader shows masked secrets.
type SecretReader interface {
	Read(ctx context.Context, service string) (secrets.View, error)
	ReadKey(ctx context.Context, service, key string) (secrets.Value, error)
}

// HealthChecker runs the probes.
type HealthChecker interface {
	Has(name string) bool
	Check(ctx context.Context, names []string) health.Report
}

// RateLimiter counts a client's request.
type RateLimiter interface {
	Hit(ctx context.Context, client string) (ratelimit.Decision, error)
}

// Deps is everything the handlers use; tests give fakes.
type Deps struct {
	Implementation string
	Items          map[string]ItemStore // postgres, mysql, mongodb
	Cache          CacheStore
	Queues         QueueStore
	Cluster        ClusterView
	Secrets        SecretReader
	Health         HealthChecker
	Metrics        *metrics.Metrics
	Limiter        RateLimiter // nil: no rate limit
	CORSOrigins    []string
	BodyLimit      int64
	Log            *slog.Logger
}

type api struct {
	Deps
	engine    *gin.Engine
	templates map[string]string   // gin path -> contract template
	methods   map[string][]string // contract template -> methods
}

func init() { gin.SetMode(gin.ReleaseMode) }

// New builds the handler. extra may register more routes (tests use it for a panicking one).
func New(d Deps, extra ...func(*gin.Engine)) http.Handler {
	if d.BodyLimit <= 0 {
		d.BodyLimit = 1 << 20
	}
	if d.Implementation == "" {
		d.Implementation = "golang"
	}
	a := &api{Deps: d, engine: gin.New(), templates: map[string]string{}, methods: map[string][]string{}}
	e := a.engine
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = false // 405 is answered by noRoute, with every allowed method
	e.ContextWithFallback = true
	// Outermost first, as the Python apps: request id, metrics, CORS, rate limit, last resort.
	e.Use(a.requestID, a.metrics, a.cors, a.rateLimit, a.recovery)
	e.NoRoute(a.noRoute)
	a.routes()
	for _, f := range extra {
		f(e)
	}
	return refuseUnparsable(e, d.Log)
}

// handle registers a route under its contract template (GET also answers HEAD).
func (a *api) handle(method, template string, h gin.HandlerFunc) {
	path := toGin(template)
	a.templates[path] = template
	a.methods[template] = append(a.methods[template], method)
	a.engine.Handle(method, path, h)
	if method == http.MethodGet {
		a.methods[template] = append(a.methods[template], http.MethodHead)
		a.engine.Handle(http.MethodHead, path, h)
	}
}

func toGin(template string) string {
	parts := strings.Split(template, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			parts[i] = ":" + p[1:len(p)-1]
		}
	}
	return strings.Join(parts, "/")
}

// allowed lists every method some route serves on path, sorted.
func (a *api) allowed(path string) []string {
	found := map[string]bool{}
	segments := strings.Split(path, "/")
	for template, methods := range a.methods {
		parts := strings.Split(template, "/")
		if len(parts) != len(segments) {
			continue
		}
		match := true
		for i, p := range parts {
			if strings.HasPrefix(p, "{") {
				match = match && segments[i] != ""
			} else {
				match = match && p == segments[i]
			}
		}
		if match {
			for _, m := range methods {
				found[m] = true
			}
		}
	}
	out := make([]string, 0, len(found))
	for m := range found {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

func (a *api) noRoute(c *gin.Context) {
	if allowed := a.allowed(c.Request.URL.Path); len(allowed) > 0 {
		c.Header("Allow", strings.Join(allowed, ", "))
		a.problem(c, http.StatusMethodNotAllowed, "This method is not allowed on this path.", "", nil)
		return
	}
	a.problem(c, http.StatusNotFound, "No resource exists at this path.", "", nil)
}

func (a *api) routes() {
	a.handle("GET", "/", a.serviceInfo)
	a.handle("GET", "/health", a.liveness)
	a.handle("GET", "/health/all", a.healthAll)
	a.handle("GET", "/health/{service}", a.healthService)
	a.handle("GET", "/metrics", a.serviceMetrics)
	a.handle("GET", "/examples/vault/secret/{service}", a.vaultSecret)
	a.handle("GET", "/examples/vault/secret/{service}/{key}", a.vaultSecretKey)
	for _, db := range []string{"postgres", "mysql", "mongodb"} {
		base := "/examples/" + db
		a.handle("GET", base+"/query", a.dbQuery(db))
		a.handle("GET", base+"/items", a.dbList(db))
		a.handle("POST", base+"/items", a.dbCreate(db))
		a.handle("GET", base+"/items/{item_id}", a.dbGet(db))
		a.handle("DELETE", base+"/items/{item_id}", a.dbDelete(db))
	}
	a.handle("GET", "/examples/cache/{key}", a.cacheGet)
	a.handle("PUT", "/examples/cache/{key}", a.cachePut)
	a.handle("DELETE", "/examples/cache/{key}", a.cacheDelete)
	a.handle("GET", "/examples/messaging/queues/{queue}", a.queueInspect)
	a.handle("GET", "/examples/messaging/queues/{queue}/messages", a.queueConsume)
	a.handle("POST", "/examples/messaging/queues/{queue}/messages", a.queuePublish)
	a.handle("GET", "/examples/redis/cluster/nodes", a.clusterNodes)
	a.handle("GET", "/examples/redis/cluster/slots", a.clusterSlots)
	a.handle("GET", "/examples/redis/cluster/info", a.clusterInfo)
	a.handle("GET", "/examples/redis/nodes/{node}/info", a.nodeInfo)
}
