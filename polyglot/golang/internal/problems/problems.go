// Package problems writes RFC 9457 problem documents exactly as the contract's Problem schema
// (openapi/devstack.yaml): type about:blank, the status's RFC 9110 reason phrase as title, the
// request path as instance, the response's X-Request-ID as request_id; dependency on 503/504
// only, errors on 422 only. Nothing else in the service builds an error body.
package problems

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MediaType is the content type of every error.
const MediaType = "application/problem+json"

// Fixed details, the same sentences as the Python apps.
const (
	GenericDetail   = "The server could not complete the request."
	InvalidDetail   = "The request is invalid; see errors."
	BadJSONDetail   = "The request body is not valid JSON."
	EmptyBodyDetail = "The request body is empty; send a JSON object."
	WrongMediaType  = "The request body must be application/json."
	NoRouteDetail   = "No resource exists at this path."
	NoMethodDetail  = "This method is not allowed on this path."
)

var reasons = map[int]string{
	400: "Bad Request",
	404: "Not Found",
	405: "Method Not Allowed",
	413: "Content Too Large",
	415: "Unsupported Media Type",
	422: "Unprocessable Content",
	429: "Too Many Requests",
	500: "Internal Server Error",
	503: "Service Unavailable",
	504: "Gateway Timeout",
}

// Reason is the RFC 9110 reason phrase of status.
func Reason(status int) string {
	if r, ok := reasons[status]; ok {
		return r
	}
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "Error"
}

var dependencies = map[string]bool{
	"vault": true, "postgres": true, "mysql": true, "mongodb": true, "redis": true, "rabbitmq": true,
}

// FieldError is one invalid parameter or body member of a 422.
type FieldError struct {
	Location string `json:"location"`
	Field    string `json:"field"`
	Detail   string `json:"detail"`
}

// Problem is the document; optional members are omitted when empty.
type Problem struct {
	Type       string       `json:"type"`
	Title      string       `json:"title"`
	Status     int          `json:"status"`
	Detail     string       `json:"detail"`
	Instance   string       `json:"instance"`
	RequestID  string       `json:"request_id"`
	Dependency string       `json:"dependency,omitempty"`
	Errors     []FieldError `json:"errors,omitempty"`
}

// New builds a problem for a request path; dependency and errors are kept only where the
// contract allows them.
func New(status int, detail, path, requestID, dependency string, errs []FieldError) Problem {
	p := Problem{
		Type:      "about:blank",
		Title:     Reason(status),
		Status:    status,
		Detail:    detail,
		Instance:  EscapePath(path),
		RequestID: requestID,
	}
	if requestID == "" {
		p.RequestID = "unknown"
	}
	if (status == 503 || status == 504) && dependencies[dependency] {
		p.Dependency = dependency
	}
	if status == 422 && len(errs) > 0 {
		p.Errors = errs
	}
	return p
}

// Write sends p with its status and the problem media type; headers already set stay.
func Write(w http.ResponseWriter, p Problem) {
	body, err := Marshal(p)
	if err != nil { // cannot happen: every member is a string, an int or a slice of them
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
	}
	h := w.Header()
	h.Set("Content-Type", MediaType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// Marshal encodes JSON without HTML escaping (as the Python apps do) and without a newline.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Sentence makes a library message a detail: capitalised, ending with a full stop.
func Sentence(text string) string {
	text = strings.TrimSpace(text)
	if text == "" {
		text = "The request failed"
	}
	r, size := utf8.DecodeRuneInString(text)
	text = string(unicode.ToUpper(r)) + text[size:]
	if !strings.HasSuffix(text, ".") && !strings.HasSuffix(text, "!") && !strings.HasSuffix(text, "?") {
		text += "."
	}
	return text
}

const pathSafe = "/!$&'()*+,;=:@-._~"

// EscapePath percent-encodes a decoded request path so that it is a URI reference, keeping
// RFC 3986 pchar and "/" as they are (Python's quote(path, safe=...)).
func EscapePath(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(pathSafe, c) >= 0) {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)>>4, 16)) + strings.ToUpper(strconv.FormatUint(uint64(c)&15, 16)))
	}
	return b.String()
}
