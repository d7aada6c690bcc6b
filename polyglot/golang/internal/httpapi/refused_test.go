package httpapi

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log sink the connection goroutines may write to concurrently.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveRefusing serves handler over RefusedRequests(l) as main does; l is closed at the end.
func serveRefusing(t *testing.T, handler http.Handler, l net.Listener) *lockedBuffer {
	t.Helper()
	logs := &lockedBuffer{}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(RefusedRequests(l, slog.New(slog.NewJSONHandler(logs, nil)), 5*time.Second)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return logs
}

// exchange sends raw bytes on conn and reads until the server closes the connection.
func exchange(t *testing.T, conn net.Conn, request string) string {
	t.Helper()
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v (so far %q)", request, err, answer)
	}
	return string(answer)
}

// assertRefused checks answer is exactly the problem answer to a refused request: one 400 with
// the problem document, its request id in X-Request-ID, and the connection closed.
func assertRefused(t *testing.T, request, answer string) (requestID string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(answer)), nil)
	if err != nil {
		t.Fatalf("%q: not an HTTP answer: %v: %q", request, err, answer)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" || !resp.Close {
		t.Fatalf("%q answered %q", request, answer)
	}
	var problem map[string]any
	if err := json.Unmarshal(body, &problem); err != nil {
		t.Fatalf("%q: body %q: %v", request, body, err)
	}
	id := resp.Header.Get("X-Request-ID")
	want := map[string]any{
		"type": "about:blank", "title": "Bad Request", "status": 400.0, "detail": ParseErrorDetail,
		"instance": "/", "request_id": id,
	}
	if !uuid4.MatchString(id) || len(problem) != len(want) {
		t.Fatalf("%q: problem %v, request id %q", request, problem, id)
	}
	for k, v := range want {
		if problem[k] != v {
			t.Fatalf("%q: %s is %v, want %v", request, k, problem[k], v)
		}
	}
	return id
}

// The requests of tests/integration/apps/test_http_edges.py, and the other refusals net/http
// makes before any handler runs.
var unparsable = []string{
	"GARBAGE\r\n\r\n",
	"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",                                       // no Host
	"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", // 501 in net/http
	"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", http.DefaultMaxHeaderBytes+8192) + "\r\n\r\n", // 431
}

func TestARequestTheParserRefusesIsAProblem(t *testing.T) {
	w := newWorld(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := serveRefusing(t, w.handler, l)
	for _, request := range unparsable {
		conn, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		label := request[:min(len(request), 60)]
		id := assertRefused(t, label, exchange(t, conn, request))
		if !strings.Contains(logs.String()+w.logs.String(), id) {
			t.Fatalf("%q: the refusal is not logged with its request id %s", label, id)
		}
	}
}

func TestGoodAnswersPassTheListenerUntouched(t *testing.T) {
	w := newWorld(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveRefusing(t, w.handler, l)
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// A handler's own 400 and 404 on a kept-alive connection, then a request net/http refuses.
	answer := exchange(t, conn, "POST /examples/postgres/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{"+
		"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GARBAGE\r\n\r\n")
	r := bufio.NewReader(strings.NewReader(answer))
	for _, want := range []int{400, 404} {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want || resp.Close || strings.Contains(string(body), ParseErrorDetail) {
			t.Fatalf("answered %d (close %v) %s, want the handler's %d", resp.StatusCode, resp.Close, body, want)
		}
	}
	rest, _ := io.ReadAll(r)
	assertRefused(t, "GARBAGE after two requests", string(rest))
}

func TestNetHTTPRefusalIsRecognisedExactly(t *testing.T) {
	for raw, want := range map[string]int{
		"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request":                                         400,
		"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large": 431,
		"HTTP/1.1 400 Bad Request: missing required Host header\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: x":        400,
		// A handler's answers: headers of its own first, Date always.
		"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nDate: Sat, 28 Nov 2026 09:00:00 GMT\r\n\r\n": 0,
		"HTTP/1.1 400 Bad Request\r\nX-Request-Id: a\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n":                     0,
		"HTTP/1.1 100 Continue\r\n\r\n": 0,
		`{"value":"HTTP/1.1 400"}`:      0,
	} {
		status, refused := netHTTPRefusal([]byte(raw))
		if status != want || refused != (want != 0) {
			t.Errorf("%q: %d %v, want %d", raw, status, refused, want)
		}
	}
}

func TestHTTPSKeepsTLSAndRefusesToo(t *testing.T) {
	w := newWorld(t, nil)
	seen := make(chan *tls.ConnectionState, 1)
	handler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case seen <- r.TLS:
		default:
		}
		w.handler.ServeHTTP(rw, r)
	})
	ts := httptest.NewTLSServer(handler) // for its certificate and a client that trusts it
	defer ts.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveRefusing(t, handler, tls.NewListener(l, ts.TLS.Clone()))
	addr := l.Addr().String()

	resp, err := ts.Client().Get("https://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /health over TLS: %d", resp.StatusCode)
	}
	if state := <-seen; state == nil || !state.HandshakeComplete {
		t.Fatalf("Request.TLS is %v", state)
	}

	clientTLS := ts.Client().Transport.(*http.Transport).TLSClientConfig
	for _, request := range unparsable[:4] {
		conn, err := tls.Dial("tcp", addr, clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		assertRefused(t, request[:min(len(request), 60)], exchange(t, conn, request))
	}

	// Plain HTTP on the HTTPS port: net/http's own hint, as without the wrapper.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if answer := exchange(t, conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(answer, "HTTP/1.0 400 Bad Request") {
		t.Fatalf("plain HTTP on the HTTPS port: %q", answer)
	}
}
