package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/health"
	"devstack/polyglot/golang/internal/metrics"
	"devstack/polyglot/golang/internal/ratelimit"
	"devstack/polyglot/golang/internal/secrets"
	"devstack/polyglot/golang/internal/stores"
)

// -- fakes -------------------------------------------------------------------------------------

type fakeItems struct {
	mu      sync.Mutex
	backend string
	items   map[string]stores.Item
	err     error
	created []stores.ItemCreate
}

func (f *fakeItems) Backend() string { return f.backend }
func (f *fakeItems) Query(context.Context) (stores.QueryResult, error) {
	return stores.QueryResult{Database: f.backend, ServerVersion: "1", ServerTime: "2026-01-01T00:00:00Z"}, f.err
}
func (f *fakeItems) Create(_ context.Context, in stores.ItemCreate) (stores.Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return stores.Item{}, f.err
	}
	f.created = append(f.created, in)
	it := stores.Item{ID: "id-1", Name: in.Name, Quantity: in.Quantity}
	f.items[it.ID] = it
	return it, nil
}
func (f *fakeItems) Get(_ context.Context, id string) (stores.Item, error) {
	if f.err != nil {
		return stores.Item{}, f.err
	}
	if it, ok := f.items[id]; ok {
		return it, nil
	}
	return stores.Item{}, apperr.NotFound("no %s item has this id", f.backend)
}
func (f *fakeItems) List(context.Context, int) (stores.ItemList, error) {
	return stores.ItemList{Items: []stores.Item{}}, f.err
}
func (f *fakeItems) Delete(_ context.Context, id string) error {
	if _, ok := f.items[id]; !ok {
		return apperr.NotFound("no %s item has this id", f.backend)
	}
	delete(f.items, id)
	return nil
}
func (f *fakeItems) Probe(context.Context) error { return f.err }

type fakeCache struct{ values map[string]string }

func (f *fakeCache) Get(_ context.Context, key string) (stores.CacheEntry, error) {
	v, ok := f.values[key]
	if !ok {
		return stores.CacheEntry{}, apperr.NotFound("cache key %s does not exist", apperr.Repr(key))
	}
	return stores.CacheEntry{Key: key, Value: v}, nil
}
func (f *fakeCache) Put(_ context.Context, key, value string, ttl *int64) (stores.CacheEntry, bool, error) {
	_, existed := f.values[key]
	f.values[key] = value
	return stores.CacheEntry{Key: key, Value: value, TTLSeconds: ttl}, !existed, nil
}
func (f *fakeCache) Delete(_ context.Context, key string) error {
	if _, ok := f.values[key]; !ok {
		return apperr.NotFound("cache key %s does not exist", apperr.Repr(key))
	}
	delete(f.values, key)
	return nil
}

type fakeQueues struct {
	published [][]byte
	settled   []bool
}

func (f *fakeQueues) Publish(_ context.Context, queue string, payload []byte) (stores.PublishResult, error) {
	f.published = append(f.published, payload)
	return stores.PublishResult{Queue: queue, MessageID: "00000000-0000-4000-8000-000000000000"}, nil
}
func (f *fakeQueues) Consume(_ context.Context, queue string, _ int) (stores.ConsumeResult, stores.Settle, error) {
	return stores.ConsumeResult{Queue: queue, Messages: []stores.ConsumedMessage{}}, func(delivered bool) { f.settled = append(f.settled, delivered) }, nil
}
func (f *fakeQueues) Inspect(context.Context, string) (stores.QueueInfo, error) {
	return stores.QueueInfo{}, apperr.Timeout("rabbitmq", "inspect timed out", nil)
}

type fakeCluster struct{}

func (fakeCluster) Nodes(context.Context) ([]stores.RedisNode, error) { return nil, nil }
func (fakeCluster) Slots(context.Context) (stores.ClusterSlots, error) {
	return stores.ClusterSlots{}, nil
}
func (fakeCluster) Info(context.Context) (stores.ClusterInfo, error) {
	return stores.ClusterInfo{}, nil
}
func (fakeCluster) NodeInfo(context.Context, string) (stores.NodeInfo, error) {
	return stores.NodeInfo{}, apperr.Unavailable("redis", "no node answered", nil)
}

type fakeSecrets struct{}

func (fakeSecrets) Read(_ context.Context, service string) (secrets.View, error) {
	if service != "postgres" {
		return secrets.View{}, apperr.NotFound("no secret for %s", apperr.Repr(service))
	}
	return secrets.View{Service: service, Path: "secret/postgres", Version: 1,
		Data: map[string]string{"user": "app", "password": "********"}, MaskedKeys: []string{"password"}}, nil
}
func (f fakeSecrets) ReadKey(ctx context.Context, service, key string) (secrets.Value, error) {
	return secrets.Value{Service: service, Key: key, Value: "app"}, nil
}

type fakeHealth struct{ status string }

func (f fakeHealth) Has(name string) bool { return name == "postgres" || name == "vault" }
func (f fakeHealth) Check(_ context.Context, names []string) health.Report {
	if names == nil {
		names = []string{"vault", "postgres"}
	}
	r := health.Report{Status: f.status, Checks: map[string]health.Check{}}
	for _, n := range names {
		r.Checks[n] = health.Check{Status: f.status}
	}
	return r
}

type fakeLimiter struct {
	count int
	limit int
	err   error
}

func (f *fakeLimiter) Hit(context.Context, string) (ratelimit.Decision, error) {
	if f.err != nil {
		return ratelimit.Decision{}, f.err
	}
	f.count++
	return ratelimit.Decide(int64(f.count), f.limit, 60, 30), nil
}

type world struct {
	handler http.Handler
	items   map[string]*fakeItems
	queues  *fakeQueues
	metrics *metrics.Metrics
	logs    *strings.Builder
}

func newWorld(t *testing.T, change func(*Deps), extra ...func(*gin.Engine)) *world {
	t.Helper()
	w := &world{items: map[string]*fakeItems{}, queues: &fakeQueues{}, metrics: metrics.New(nil), logs: &strings.Builder{}}
	items := map[string]ItemStore{}
	for _, db := range []string{"postgres", "mysql", "mongodb"} {
		w.items[db] = &fakeItems{backend: db, items: map[string]stores.Item{}}
		items[db] = w.items[db]
	}
	d := Deps{
		Items: items, Cache: &fakeCache{values: map[string]string{}}, Queues: w.queues, Cluster: fakeCluster{},
		Secrets: fakeSecrets{}, Health: fakeHealth{status: "healthy"}, Metrics: w.metrics,
		Log: slog.New(slog.NewJSONHandler(w.logs, nil)),
	}
	if change != nil {
		change(&d)
	}
	w.handler = New(d, extra...)
	return w
}

type response struct {
	status  int
	header  http.Header
	body    map[string]any
	rawBody string
}

func (w *world) do(t *testing.T, method, path, contentType, body string, headers ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	w.handler.ServeHTTP(rec, req)
	raw, _ := io.ReadAll(rec.Body)
	r := response{status: rec.Code, header: rec.Header(), rawBody: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

var uuid4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func assertProblem(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.rawBody)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q", ct)
	}
	if r.body["type"] != "about:blank" || r.body["request_id"] != r.header.Get("X-Request-ID") || r.body["detail"] == "" {
		t.Fatalf("not a problem document for this request: %s", r.rawBody)
	}
	if _, has := r.body["errors"]; has != (status == 422) {
		t.Fatalf("errors present %v for %d", has, status)
	}
	if _, has := r.body["dependency"]; has != (status == 503 || status == 504) {
		t.Fatalf("dependency present %v for %d", has, status)
	}
}

func fields(r response) []string {
	var out []string
	errs, _ := r.body["errors"].([]any)
	for _, e := range errs {
		m := e.(map[string]any)
		out = append(out, m["location"].(string)+" "+m["field"].(string))
	}
	sort.Strings(out)
	return out
}

// -- tests -------------------------------------------------------------------------------------

func TestRequestIDIsKeptWhenSaneAndReplacedOtherwise(t *testing.T) {
	w := newWorld(t, nil)
	tests := []struct {
		sent string
		kept bool
	}{
		{"parity-0123", true}, {"a.b_c:d+e/f=g-h", true}, {strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false}, {"has space", false}, {"semi;colon", false}, {"", false},
	}
	for _, tt := range tests {
		r := w.do(t, "GET", "/examples/cache/missing", "", "", "X-Request-ID", tt.sent)
		got := r.header.Get("X-Request-ID")
		if tt.kept && got != tt.sent {
			t.Errorf("sane id %q not echoed: %q", tt.sent, got)
		}
		if !tt.kept && !uuid4.MatchString(got) {
			t.Errorf("insane id %q replaced by %q, want a UUID v4", tt.sent, got)
		}
		assertProblem(t, r, 404)
	}
}

func TestRoutingErrors(t *testing.T) {
	w := newWorld(t, nil)
	assertProblem(t, w.do(t, "GET", "/nope", "", ""), 404)
	assertProblem(t, w.do(t, "GET", "/health/", "", ""), 404)
	r := w.do(t, "PATCH", "/examples/postgres/items", "", "")
	assertProblem(t, r, 405)
	if r.header.Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}
	r = w.do(t, "PATCH", "/examples/cache/a*b", "", "")
	if r.status != 405 || r.header.Get("Allow") != "DELETE, GET, HEAD, PUT" {
		t.Errorf("%d Allow %q", r.status, r.header.Get("Allow"))
	}
	if r := w.do(t, "HEAD", "/health", "", ""); r.status != 200 {
		t.Errorf("HEAD /health: %d", r.status)
	}
}

func TestBodyChecksInTheContractsOrder(t *testing.T) {
	w := newWorld(t, func(d *Deps) { d.BodyLimit = 64 })
	big := `{"name": "` + strings.Repeat("a", 100) + `"}`
	tests := []struct {
		name, contentType, body string
		status                  int
	}{
		{"too large first", "application/json", big, 413},
		{"too large before the media type", "text/plain", big, 413},
		{"wrong media type", "text/plain", `{"name":"x"}`, 415},
		{"no media type", "", `{"name":"x"}`, 415},
		{"media type before syntax", "text/plain", `{not json`, 415},
		{"malformed", "application/json", `{"name": `, 400},
		{"empty", "application/json", ``, 400},
		{"not UTF-8", "application/json", "{\"name\":\"\xff\"}", 400},
		{"NaN is not JSON", "application/json", `{"name":"x","quantity":NaN}`, 400},
		{"schema last", "application/json; charset=utf-8", `[]`, 422},
		{"valid", "application/JSON; charset=utf-8", `{"name":"x"}`, 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := w.do(t, "POST", "/examples/postgres/items", tt.contentType, tt.body)
			if tt.status >= 400 {
				assertProblem(t, r, tt.status)
			} else if r.status != tt.status {
				t.Fatalf("status %d: %s", r.status, r.rawBody)
			}
		})
	}
}

func TestItemValidationNamesEveryField(t *testing.T) {
	w := newWorld(t, nil)
	tests := []struct {
		body string
		want []string
	}{
		{`{}`, []string{"body /name"}},
		{`[]`, []string{"body "}},
		{`"x"`, []string{"body "}},
		{`null`, []string{"body "}},
		{`{"name":"","quantity":-1,"x":1}`, []string{"body /name", "body /quantity", "body /x"}},
		{`{"name":"n","quantity":2147483648}`, []string{"body /quantity"}},
		{`{"name":"n","quantity":1.5}`, []string{"body /quantity"}},
		{`{"name":"n","quantity":"3"}`, []string{"body /quantity"}},
		{`{"name":"n","quantity":true}`, []string{"body /quantity"}},
		{`{"name":"n","quantity":1e400}`, []string{"body /quantity"}},
		{`{"name":"a\u0000b"}`, []string{"body /name"}},
		{`{"name":"` + strings.Repeat("é", 101) + `"}`, []string{"body /name"}},
		{`{"name":null}`, []string{"body /name"}},
		{`{"name":"n","a/b~c":1}`, []string{"body /a~1b~0c"}},
	}
	for _, tt := range tests {
		r := w.do(t, "POST", "/examples/mysql/items", "application/json", tt.body)
		assertProblem(t, r, 422)
		if got := fields(r); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: errors %v, want %v", tt.body, got, tt.want)
		}
	}
	// Integral floats are integers, as pydantic's lax mode reads them.
	for _, body := range []string{`{"name":"n","quantity":2.0}`, `{"name":"n","quantity":1e2}`, `{"name":"` + strings.Repeat("é", 100) + `"}`} {
		if r := w.do(t, "POST", "/examples/mongodb/items", "application/json", body); r.status != 201 {
			t.Errorf("%s: %d %s", body, r.status, r.rawBody)
		}
	}
	if got := w.items["mongodb"].created[1].Quantity; got != 100 {
		t.Errorf("1e2 stored as %d", got)
	}
	r := w.do(t, "POST", "/examples/postgres/items", "application/json", `{"name":"n","quantity":3}`)
	if r.status != 201 || r.header.Get("Location") != "/examples/postgres/items/id-1" {
		t.Errorf("create: %d %v", r.status, r.header)
	}
}

func TestQueryParameters(t *testing.T) {
	w := newWorld(t, nil)
	for _, ok := range []string{"5", "5.0", "%205", "+5", "1_0", "100", "1"} {
		if r := w.do(t, "GET", "/examples/postgres/items?limit="+ok, "", ""); r.status != 200 {
			t.Errorf("limit=%s: %d", ok, r.status)
		}
	}
	for _, bad := range []string{"0", "101", "ten", "-1", "", "5e0", "0x5", "1.5"} {
		r := w.do(t, "GET", "/examples/postgres/items?limit="+bad, "", "")
		assertProblem(t, r, 422)
		if got := fields(r); len(got) != 1 || got[0] != "query limit" {
			t.Errorf("limit=%s: %v", bad, got)
		}
	}
}

func TestCacheAndQueueNames(t *testing.T) {
	w := newWorld(t, nil)
	for path, field := range map[string]string{
		"/examples/cache/a*b":                         "path key",
		"/examples/cache/" + strings.Repeat("k", 201): "path key",
		"/examples/messaging/queues/amq.x":            "path queue",
		"/examples/messaging/queues/bad*name":         "path queue",
	} {
		r := w.do(t, "GET", path, "", "")
		assertProblem(t, r, 422)
		if got := fields(r); len(got) != 1 || got[0] != field {
			t.Errorf("%s: %v", path, got)
		}
	}
	assertProblem(t, w.do(t, "GET", "/examples/cache/a..b", "", ""), 404)
	r := w.do(t, "PUT", "/examples/cache/a*b", "application/json", `{"value":1,"ttl_seconds":null}`)
	if got := fields(r); strings.Join(got, ",") != "body /ttl_seconds,body /value,path key" {
		t.Errorf("every invalid part is reported: %v", got)
	}
	if r := w.do(t, "PUT", "/examples/cache/k", "application/json", `{"value":"v"}`); r.status != 201 {
		t.Errorf("first put: %d", r.status)
	}
	r = w.do(t, "PUT", "/examples/cache/k", "application/json", `{"value":"w","ttl_seconds":5}`)
	if r.status != 200 || r.body["ttl_seconds"] != 5.0 {
		t.Errorf("second put: %d %s", r.status, r.rawBody)
	}
	if r := w.do(t, "DELETE", "/examples/cache/k", "", ""); r.status != 204 || r.rawBody != "" {
		t.Errorf("delete: %d %q", r.status, r.rawBody)
	}
	r = w.do(t, "POST", "/examples/messaging/queues/q/messages", "application/json", `[1]`)
	assertProblem(t, r, 422)
	if r := w.do(t, "POST", "/examples/messaging/queues/q/messages", "application/json", `{"a": [1, 2.5]}`); r.status != 202 {
		t.Errorf("publish: %d", r.status)
	}
	if r := w.do(t, "GET", "/examples/messaging/queues/q/messages", "", ""); r.status != 200 || len(w.queues.settled) != 1 || !w.queues.settled[0] {
		t.Errorf("consume: %d, settled %v: want acknowledged once the answer was written", r.status, w.queues.settled)
	}
}

func TestDependencyFailuresAreProblems(t *testing.T) {
	w := newWorld(t, nil)
	w.items["postgres"].err = apperr.Unavailable("postgres", "query: connection refused", errors.New("dial tcp: refused password=hunter22"))
	r := w.do(t, "GET", "/examples/postgres/query", "", "")
	assertProblem(t, r, 503)
	if r.header.Get("Retry-After") != "5" || r.body["dependency"] != "postgres" {
		t.Errorf("503: %v %s", r.header, r.rawBody)
	}
	if strings.Contains(r.rawBody, "refused") {
		t.Errorf("raw error text reached the client: %s", r.rawBody)
	}
	r = w.do(t, "GET", "/examples/messaging/queues/q", "", "")
	assertProblem(t, r, 504)
	if r.body["dependency"] != "rabbitmq" {
		t.Errorf("504: %s", r.rawBody)
	}
	// Only the failing dependency's routes fail.
	if r := w.do(t, "GET", "/examples/mysql/query", "", ""); r.status != 200 {
		t.Errorf("mysql: %d", r.status)
	}
}

func TestHealth(t *testing.T) {
	w := newWorld(t, func(d *Deps) { d.Health = fakeHealth{status: "degraded"} })
	r := w.do(t, "GET", "/health/all", "", "")
	if r.status != 503 || r.header.Get("Retry-After") != "5" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("degraded: %d %v", r.status, r.header)
	}
	assertProblem(t, w.do(t, "GET", "/health/Postgres", "", ""), 404)
	if r := w.do(t, "GET", "/health", "", ""); r.status != 200 || r.body["status"] != "healthy" {
		t.Errorf("liveness: %d", r.status)
	}
}

func TestAPanicIsA500ProblemAndTheServiceGoesOn(t *testing.T) {
	w := newWorld(t, nil, func(e *gin.Engine) {
		e.GET("/boom", func(*gin.Context) { panic("kaboom with password=hunter22") })
	})
	server := httptest.NewServer(w.handler)
	defer server.Close()
	for range 3 { // over a real connection: the process and the server stay up
		resp, err := http.Get(server.URL + "/boom")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("panic answered %d %q", resp.StatusCode, body)
		}
		if strings.Contains(string(body), "kaboom") {
			t.Fatalf("panic text reached the client: %s", body)
		}
		if !strings.Contains(w.logs.String(), resp.Header.Get("X-Request-ID")) {
			t.Fatalf("the panic is not logged with its request id")
		}
	}
	resp, err := http.Get(server.URL + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the panics: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestMetricsUseRouteTemplates(t *testing.T) {
	w := newWorld(t, nil)
	w.do(t, "GET", "/examples/cache/probe-key", "", "")
	w.do(t, "GET", "/no/such/path", "", "")
	r := w.do(t, "GET", "/metrics", "", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %q", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{
		`devstack_http_requests_total{method="GET",route="/examples/cache/{key}",status="404"} 1`,
		`route="<unmatched>"`,
		"# TYPE devstack_http_request_duration_seconds histogram",
	} {
		if !strings.Contains(r.rawBody, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(r.rawBody, "probe-key") {
		t.Error("a raw path became a label")
	}
}

func TestRateLimit(t *testing.T) {
	limiter := &fakeLimiter{limit: 2}
	w := newWorld(t, func(d *Deps) { d.Limiter = limiter })
	for i := 0; i < 2; i++ {
		r := w.do(t, "GET", "/examples/cache/k", "", "")
		if r.header.Get("RateLimit-Policy") != `"default";q=2;w=60` || r.header.Get("RateLimit") == "" {
			t.Errorf("quota headers: %v", r.header)
		}
	}
	r := w.do(t, "GET", "/examples/cache/k", "", "")
	assertProblem(t, r, 429)
	if r.header.Get("Retry-After") != "30" || r.header.Get("RateLimit") != `"default";r=0;t=30` {
		t.Errorf("429 headers: %v", r.header)
	}
	if r := w.do(t, "GET", "/health", "", ""); r.status != 200 {
		t.Errorf("health is never limited: %d", r.status)
	}
	limiter.err = apperr.Unavailable("redis", "down", nil)
	if r := w.do(t, "GET", "/examples/cache/k", "", ""); r.status != 404 {
		t.Errorf("a failed limiter lets requests through: %d", r.status)
	}
}

func TestCORS(t *testing.T) {
	w := newWorld(t, func(d *Deps) { d.CORSOrigins = []string{"http://app.example"} })
	r := w.do(t, "OPTIONS", "/examples/cache/k", "", "", "Origin", "http://app.example", "Access-Control-Request-Method", "PUT",
		"Access-Control-Request-Headers", "content-type, x-request-id")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "http://app.example" {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	r = w.do(t, "OPTIONS", "/examples/cache/k", "", "", "Origin", "http://evil.example", "Access-Control-Request-Method", "PUT")
	if r.status != 400 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight: %d %v", r.status, r.header)
	}
	r = w.do(t, "GET", "/", "", "", "Origin", "http://app.example")
	if r.header.Get("Access-Control-Allow-Origin") != "http://app.example" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Request-ID") {
		t.Errorf("simple request: %v", r.header)
	}
}

func TestValuesPastTheSyntaxAre422(t *testing.T) {
	w := newWorld(t, nil)
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	tests := []struct {
		path, body, field string
	}{
		{"/examples/postgres/items", `{"name":"a\ud800b"}`, "/name"},
		{"/examples/postgres/items", `{"name":` + deep + `}`, ""},
		{"/examples/postgres/items", `{"name":` + strings.Repeat("[", 65) + `}`, ""}, // nesting before syntax
		{"/examples/cache/k", `{"value":"v","ttl_seconds":1e400}`, "/ttl_seconds"},
		{"/examples/messaging/queues/q/messages", `{"\ud800": 1}`, ""},
	}
	for _, tt := range tests {
		method := "POST"
		if strings.HasPrefix(tt.path, "/examples/cache") {
			method = "PUT"
		}
		r := w.do(t, method, tt.path, "application/json", tt.body)
		assertProblem(t, r, 422)
		if got := fields(r); len(got) != 1 || got[0] != "body "+tt.field {
			t.Errorf("%s %.40s: %v", tt.path, tt.body, got)
		}
	}
	if len(w.queues.published) != 0 {
		t.Error("a refused message reached the broker")
	}
}

// goneQueues publishes until the caller gives up, as a broker confirm does for a client that hung up.
type goneQueues struct{ fakeQueues }

func (*goneQueues) Publish(ctx context.Context, _ string, _ []byte) (stores.PublishResult, error) {
	<-ctx.Done()
	return stores.PublishResult{}, ctx.Err()
}

// A client that hung up mid-request is nobody's failure: logged as 499, not a 5xx, and no
// dependency is blamed.
func TestAClientThatHungUpIsA499NotAFailure(t *testing.T) {
	w := newWorld(t, func(d *Deps) { d.Queues = &goneQueues{} })
	ctx, hangUp := context.WithCancel(context.Background())
	hangUp()
	req := httptest.NewRequest(http.MethodPost, "/examples/messaging/queues/q/messages", strings.NewReader(`{"a":1}`)).WithContext(ctx)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	w.handler.ServeHTTP(rec, req)
	if rec.Code != StatusClientClosedRequest {
		t.Fatalf("status %d, want %d", rec.Code, StatusClientClosedRequest)
	}
	logs := w.logs.String()
	if !strings.Contains(logs, "client closed the request") || strings.Contains(logs, "dependency failed") || strings.Contains(logs, `"level":"ERROR"`) {
		t.Fatalf("logs: %s", logs)
	}
}
