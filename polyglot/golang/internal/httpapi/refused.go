package httpapi

// A request the HTTP parser refuses is answered 400 with a problem document (docs/api.md, "HTTP
// details"), as the Python apps answer it: detail "The request is not valid HTTP/1.1.", instance
// "/", a generated request id in X-Request-ID, and Connection: close.
//
// Two places refuse a request:
//   - net/http itself, before any handler runs (a malformed request line or header line, a bad
//     Content-Length, a header block over MaxHeaderBytes, an unknown transfer coding). It writes
//     its own plain-text answer straight to the connection and closes it, and offers no hook to
//     change that answer. RefusedRequests wraps the listener so that this one write is replaced
//     by the problem document: net/http's answer is recognisable exactly, as it is the only one
//     whose header block is "Content-Type: text/plain; charset=utf-8", "Connection: close" and
//     nothing else (a handler's answer always carries Date, and here X-Request-ID, first).
//   - this package, for what net/http lets through but HTTP/1.1 (and the Python apps' h11)
//     refuses: a request target with a byte that is not visible ASCII (`GET /\xff`).

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"devstack/polyglot/golang/internal/problems"
)

// ParseErrorDetail is the detail of a request the HTTP parser refused.
const ParseErrorDetail = "The request is not valid HTTP/1.1."

// refusedProblem is the problem document of a refused request.
func refusedProblem(id string) problems.Problem {
	return problems.New(http.StatusBadRequest, ParseErrorDetail, "/", id, "", nil)
}

// refusedResponse is the whole HTTP/1.1 answer to a refused request, ready for the connection.
func refusedResponse(id string) []byte {
	body, _ := problems.Marshal(refusedProblem(id))
	return fmt.Appendf(nil,
		"HTTP/1.1 400 Bad Request\r\nContent-Type: %s\r\nContent-Length: %d\r\nX-Request-ID: %s\r\nConnection: close\r\n\r\n%s",
		problems.MediaType, len(body), id, body)
}

// visibleASCII: every byte of a request target is a visible US-ASCII character (RFC 9112).
func visibleASCII(target string) bool {
	for i := 0; i < len(target); i++ {
		if target[i] < 0x21 || target[i] > 0x7e {
			return false
		}
	}
	return true
}

// refuseUnparsable answers a request whose target net/http accepted but HTTP/1.1 does not.
func refuseUnparsable(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if visibleASCII(r.RequestURI) {
			next.ServeHTTP(w, r)
			return
		}
		id := NewRequestID()
		logRefused(log, id, r.RemoteAddr, "the request target is not visible ASCII")
		h := w.Header()
		h.Set(RequestIDHeader, id)
		h.Set("Connection", "close")
		problems.Write(w, refusedProblem(id))
	})
}

func logRefused(log *slog.Logger, id, remote, reason string) {
	if log != nil {
		log.Warn("request refused by the HTTP parser", "request_id", id, "client", remote, "reason", reason)
	}
}

// RefusedRequests wraps l so that net/http's own answer to a request it cannot parse is a
// problem document. A *tls.Conn accepted from l keeps what net/http gives such a connection:
// the handshake bounded by handshakeTimeout, Request.TLS, and its answer to plain HTTP.
func RefusedRequests(l net.Listener, log *slog.Logger, handshakeTimeout time.Duration) net.Listener {
	return &refusingListener{Listener: l, log: log, handshakeTimeout: handshakeTimeout}
}

type refusingListener struct {
	net.Listener
	log              *slog.Logger
	handshakeTimeout time.Duration
}

func (l *refusingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := refusingConn{Conn: c, log: l.log}
	if tc, ok := c.(*tls.Conn); ok {
		return &refusingTLSConn{refusingConn: rc, tls: tc, timeout: l.handshakeTimeout}, nil
	}
	return &rc, nil
}

// The header block net/http writes after the status line of its own answers (server.go).
var netHTTPErrorHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")

// netHTTPRefusal reports whether p is an answer net/http wrote itself to a request it refused,
// and its status code. net/http writes it with one Write, straight to the connection.
func netHTTPRefusal(p []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 3 {
		return 0, false
	}
	end := bytes.Index(rest, []byte("\r\n"))
	if end < 0 || !bytes.HasPrefix(rest[end:], netHTTPErrorHeaders) {
		return 0, false
	}
	status, err := strconv.Atoi(string(rest[:3]))
	if err != nil || status < 400 {
		return 0, false
	}
	return status, true
}

type refusingConn struct {
	net.Conn
	log *slog.Logger
}

// Write replaces net/http's own answer to a refused request by the problem document; it is
// always a 400, as the Python apps answer every request their parser refuses (net/http would
// say 431 for a header block too large, 501 for an unknown transfer coding).
func (c *refusingConn) Write(p []byte) (int, error) {
	status, refused := netHTTPRefusal(p)
	if !refused {
		return c.Conn.Write(p)
	}
	id := NewRequestID()
	logRefused(c.log, id, c.RemoteAddr().String(), "net/http answered "+strconv.Itoa(status))
	if _, err := c.Conn.Write(refusedResponse(id)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite lets net/http half-close the connection after its 431, as it does unwrapped.
func (c *refusingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// refusingTLSConn is a refusingConn over a *tls.Conn. net/http handshakes a *tls.Conn itself;
// a wrapped one it asks once, before reading the first request, for its ConnectionState (to
// set Request.TLS), and that is where the handshake is completed here.
type refusingTLSConn struct {
	refusingConn
	tls     *tls.Conn
	timeout time.Duration
}

func (c *refusingTLSConn) ConnectionState() tls.ConnectionState {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.tls.HandshakeContext(ctx); err != nil {
		// The first Read returns this error again, which ends the connection without an answer.
		var record tls.RecordHeaderError
		if errors.As(err, &record) && record.Conn != nil && looksLikeHTTP(record.RecordHeader) {
			// As net/http answers a plain HTTP request on its HTTPS port.
			_, _ = io.WriteString(record.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			_ = record.Conn.Close()
		}
		if c.log != nil {
			c.log.Warn("TLS handshake failed", "client", c.RemoteAddr().String(), "reason", err.Error())
		}
	}
	return c.tls.ConnectionState()
}

// Write sends nothing on a connection whose handshake failed (net/http would answer a failed
// first read with a 400): there is nobody to read it.
func (c *refusingTLSConn) Write(p []byte) (int, error) {
	if !c.tls.ConnectionState().HandshakeComplete {
		return 0, net.ErrClosed
	}
	return c.refusingConn.Write(p)
}

func looksLikeHTTP(header [5]byte) bool {
	switch string(header[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}
