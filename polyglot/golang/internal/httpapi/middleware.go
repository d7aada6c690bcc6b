package httpapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/metrics"
	"devstack/polyglot/golang/internal/problems"
)

// RequestIDHeader is the correlation header.
const RequestIDHeader = "X-Request-ID"

var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._:+/=\-]{1,128}$`)

type ctxKey struct{}

// RequestID is the id of the request ctx belongs to ("" outside a request).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// SaneRequestID returns value when it is a sane id, else "".
func SaneRequestID(value string) string {
	if saneRequestID.MatchString(value) {
		return value
	}
	return ""
}

// NewRequestID is a random UUID v4, lowercase.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// requestID honours a sane X-Request-ID, else makes one; echoes it and logs the request.
func (a *api) requestID(c *gin.Context) {
	started := time.Now()
	values := c.Request.Header.Values(RequestIDHeader)
	id := ""
	if len(values) == 1 {
		id = SaneRequestID(values[0])
	}
	if id == "" {
		id = NewRequestID()
	}
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), ctxKey{}, id))
	c.Header(RequestIDHeader, id)
	c.Next()
	if a.Log != nil {
		a.Log.Info("request", "request_id", id, "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", c.Writer.Status(), "duration_ms", float64(time.Since(started).Microseconds())/1000)
	}
}

// metrics counts by route template; a request that matched no route is <unmatched>.
func (a *api) metrics(c *gin.Context) {
	if a.Metrics == nil {
		c.Next()
		return
	}
	started := time.Now()
	route := metrics.Unmatched
	if t, ok := a.templates[c.FullPath()]; ok {
		route = t
	}
	method := c.Request.Method
	inFlight := a.Metrics.HTTPInFlight.WithLabelValues(method, route)
	inFlight.Inc()
	defer func() {
		inFlight.Dec()
		a.Metrics.HTTPRequests.WithLabelValues(method, route, strconv.Itoa(c.Writer.Status())).Inc()
		a.Metrics.HTTPDuration.WithLabelValues(method, route).Observe(time.Since(started).Seconds())
	}()
	c.Next()
}

var corsAllowHeaders = []string{"Accept", "Accept-Language", "Content-Language", "Content-Type", "X-Request-ID"}

const (
	corsMethods = "GET, POST, PUT, DELETE"
	corsExpose  = "X-Request-ID, Location, Retry-After, RateLimit, RateLimit-Policy"
)

// cors behaves as Starlette's CORSMiddleware with the Python apps' settings.
func (a *api) cors(c *gin.Context) {
	origin := c.Request.Header.Get("Origin")
	if len(a.CORSOrigins) == 0 || origin == "" {
		c.Next()
		return
	}
	allowAll := slices.Contains(a.CORSOrigins, "*")
	originOK := allowAll || slices.Contains(a.CORSOrigins, origin)
	h := c.Writer.Header()
	if c.Request.Method == http.MethodOptions && c.Request.Header.Get("Access-Control-Request-Method") != "" {
		var failures []string
		if !originOK {
			failures = append(failures, "origin")
		}
		if !strings.Contains(corsMethods, c.Request.Header.Get("Access-Control-Request-Method")) {
			failures = append(failures, "method")
		}
		for _, requested := range strings.Split(c.Request.Header.Get("Access-Control-Request-Headers"), ",") {
			requested = strings.TrimSpace(requested)
			if requested != "" && !slices.ContainsFunc(corsAllowHeaders, func(h string) bool { return strings.EqualFold(h, requested) }) {
				failures = append(failures, "headers")
				break
			}
		}
		if originOK {
			if allowAll {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Add("Vary", "Origin")
			}
		}
		h.Set("Access-Control-Allow-Methods", corsMethods)
		h.Set("Access-Control-Allow-Headers", strings.Join(corsAllowHeaders, ", "))
		h.Set("Access-Control-Max-Age", "600")
		status, body := http.StatusOK, "OK"
		if len(failures) > 0 {
			status, body = http.StatusBadRequest, "Disallowed CORS "+strings.Join(failures, ", ")
		}
		c.Data(status, "text/plain; charset=utf-8", []byte(body))
		c.Abort()
		return
	}
	if originOK {
		if allowAll {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
		}
		h.Set("Access-Control-Expose-Headers", corsExpose)
	}
	c.Next()
}

// rateLimit counts requests to /examples/** per client address when a limiter is configured;
// a limiter that cannot reach Redis lets the request through (logged).
func (a *api) rateLimit(c *gin.Context) {
	if a.Limiter == nil || !strings.HasPrefix(c.Request.URL.Path, "/examples/") {
		c.Next()
		return
	}
	client, _, err := net.SplitHostPort(c.Request.RemoteAddr)
	if err != nil || client == "" {
		client = "unknown"
	}
	decision, err := a.Limiter.Hit(c.Request.Context(), client)
	if err != nil {
		a.Log.Warn("rate limit not checked: the limiter failed", "request_id", RequestID(c.Request.Context()), "error", err)
		c.Next()
		return
	}
	policy := fmt.Sprintf(`"default";q=%d;w=%d`, decision.Limit, decision.WindowSeconds)
	if !decision.Allowed {
		reset := strconv.Itoa(decision.ResetSeconds)
		c.Header("Retry-After", reset)
		c.Header("RateLimit", `"default";r=0;t=`+reset)
		c.Header("RateLimit-Policy", policy)
		a.problem(c, http.StatusTooManyRequests, fmt.Sprintf("Rate limit exceeded; retry after %d seconds.", decision.ResetSeconds), "", nil)
		c.Abort()
		return
	}
	c.Header("RateLimit", fmt.Sprintf(`"default";r=%d;t=%d`, decision.Remaining, decision.ResetSeconds))
	c.Header("RateLimit-Policy", policy)
	c.Next()
}

// recovery turns a panic into a 500 problem document, logged with the request id; the process
// goes on serving.
func (a *api) recovery(c *gin.Context) {
	defer func() {
		rec := recover()
		if rec == nil {
			return
		}
		if rec == http.ErrAbortHandler { //nolint:errorlint // the sentinel is compared as net/http does
			panic(rec)
		}
		if a.Log != nil {
			a.Log.Error("panic recovered", "request_id", RequestID(c.Request.Context()), "path", c.Request.URL.Path,
				"panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
		}
		if !c.Writer.Written() {
			for _, h := range []string{"Content-Type", "Content-Length", "Location"} {
				c.Writer.Header().Del(h)
			}
			a.problem(c, http.StatusInternalServerError, problems.GenericDetail, "", nil)
		}
		c.Abort()
	}()
	c.Next()
}

// problem writes a problem document for this request.
func (a *api) problem(c *gin.Context, status int, detail, dependency string, errs []problems.FieldError) {
	p := problems.New(status, detail, c.Request.URL.Path, RequestID(c.Request.Context()), dependency, errs)
	c.Status(status)
	problems.Write(c.Writer, p)
}

// StatusClientClosedRequest is the status logged for a request its client abandoned (nginx's
// convention; no answer reaches the client).
const StatusClientClosedRequest = 499

// fail answers an error from a use case.
func (a *api) fail(c *gin.Context, err error) {
	var nf *apperr.NotFoundError
	var inv *apperr.InvalidInputError
	id := RequestID(c.Request.Context())
	if errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil {
		// The client hung up before the answer: nobody to answer, nothing failed. Logged (and
		// counted) as nginx's 499 "client closed request", never as a 5xx.
		a.Log.Info("client closed the request", "request_id", id, "path", c.Request.URL.Path)
		c.AbortWithStatus(StatusClientClosedRequest)
		return
	}
	if dep, ok := apperr.AsDependency(err); ok {
		a.Log.Warn("dependency failed", "request_id", id, "dependency", dep.Dependency, "error", err, "path", c.Request.URL.Path)
		if dep.Timeout {
			a.problem(c, http.StatusGatewayTimeout, dep.Dependency+" did not answer in time.", dep.Dependency, nil)
			return
		}
		c.Header("Retry-After", strconv.Itoa(max(1, dep.RetryAfter)))
		a.problem(c, http.StatusServiceUnavailable, dep.Dependency+" is unavailable.", dep.Dependency, nil)
		return
	}
	switch {
	case asError(err, &nf):
		a.problem(c, http.StatusNotFound, problems.Sentence(nf.Msg), "", nil)
	case asError(err, &inv):
		detail := problems.Sentence(inv.Msg)
		a.problem(c, http.StatusUnprocessableEntity, detail, "", []problems.FieldError{{Location: "body", Field: "", Detail: detail}})
	default:
		a.Log.Error("request failed", "request_id", id, "path", c.Request.URL.Path, "error", err)
		a.problem(c, http.StatusInternalServerError, problems.GenericDetail, "", nil)
	}
}
