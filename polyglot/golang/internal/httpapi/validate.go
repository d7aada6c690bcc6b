package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"devstack/polyglot/golang/internal/jsonrules"
	"devstack/polyglot/golang/internal/problems"
	"devstack/polyglot/golang/internal/stores"
)

// The validation messages of the Python apps (pydantic's), so that a client sees the same words.
const (
	msgRequired   = "Field required"
	msgExtra      = "Extra inputs are not permitted"
	msgString     = "Input should be a valid string"
	msgInteger    = "Input should be a valid integer"
	msgObject     = "Input should be a valid dictionary or object to extract fields from"
	msgFinite     = "Input should be a finite number"
	msgFraction   = "Input should be a valid integer, got a number with a fractional part"
	msgParseInt   = "Input should be a valid integer, unable to parse string as an integer"
	msgNoNUL      = "String should match pattern '^[^\\x00]*$'"
	msgTTLNull    = "Value error, must be an integer; omit it for a key that never expires"
	msgCacheKey   = "String should match pattern '^[A-Za-z0-9:_.-]{1,200}$'"
	msgQueueName  = "String should match pattern '^[A-Za-z0-9._-]{1,200}$'"
	msgDotSegment = "Value error, must not be . or .."
	msgAmq        = "Value error, must not start with amq. (RabbitMQ reserves it)"
)

type fieldErrors []problems.FieldError

func (f *fieldErrors) add(location, field, detail string) {
	*f = append(*f, problems.FieldError{Location: location, Field: field, Detail: detail})
}

// pointer is a JSON Pointer (RFC 6901) to a body member.
func pointer(member string) string {
	return "/" + strings.ReplaceAll(strings.ReplaceAll(member, "~", "~0"), "/", "~1")
}

// isJSONMediaType is application/json with or without parameters.
func isJSONMediaType(value string) bool {
	if value == "" {
		return false
	}
	mediaType, _, err := mime.ParseMediaType(value)
	if err != nil {
		mediaType = strings.TrimSpace(strings.SplitN(value, ";", 2)[0])
	}
	return strings.EqualFold(mediaType, "application/json")
}

// body gates a request body in the contract's order: size (413, from Content-Length without
// reading, else while reading), media type (415), nesting (422), JSON syntax including an empty
// body (400), values past the syntax (422: lone surrogates, numbers no double holds).
// On a refusal the problem is written and ok is false.
func (a *api) body(c *gin.Context) (body []byte, ok bool) {
	limit := a.BodyLimit
	tooLarge := "The request body is larger than " + strconv.FormatInt(limit, 10) + " bytes."
	jsonType := isJSONMediaType(c.Request.Header.Get("Content-Type"))
	if declared := c.Request.Header.Get("Content-Length"); declared != "" {
		if c.Request.ContentLength > limit {
			a.problem(c, http.StatusRequestEntityTooLarge, tooLarge, "", nil)
			return nil, false
		}
		if !jsonType {
			a.problem(c, http.StatusUnsupportedMediaType, problems.WrongMediaType, "", nil)
			return nil, false
		}
	}
	data, err := io.ReadAll(io.LimitReader(c.Request.Body, limit+1))
	if int64(len(data)) > limit {
		a.problem(c, http.StatusRequestEntityTooLarge, tooLarge, "", nil)
		return nil, false
	}
	if err != nil {
		a.problem(c, http.StatusBadRequest, problems.BadJSONDetail, "", nil)
		return nil, false
	}
	if !jsonType {
		a.problem(c, http.StatusUnsupportedMediaType, problems.WrongMediaType, "", nil)
		return nil, false
	}
	if jsonrules.TooDeep(data) {
		a.problem(c, http.StatusUnprocessableEntity, problems.InvalidDetail, "", []problems.FieldError{{Location: "body", Field: "", Detail: jsonrules.DetailDepth}})
		return nil, false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		a.problem(c, http.StatusBadRequest, problems.EmptyBodyDetail, "", nil)
		return nil, false
	}
	if !utf8.Valid(data) || !json.Valid(data) {
		a.problem(c, http.StatusBadRequest, problems.BadJSONDetail, "", nil)
		return nil, false
	}
	if v, found := jsonrules.First(data); found {
		a.problem(c, http.StatusUnprocessableEntity, problems.InvalidDetail, "", []problems.FieldError{{Location: "body", Field: v.Field, Detail: v.Detail}})
		return nil, false
	}
	return data, true
}

// object decodes a (valid) JSON body that must be an object; ok false otherwise.
func object(body []byte) (map[string]json.RawMessage, bool) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, false
	}
	return m, true
}

// stringValue reads a JSON string member.
func stringValue(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

var queueChars = regexp.MustCompile(`^[A-Za-z0-9._\-]+$`)

var integerLiteral = regexp.MustCompile(`^-?[0-9]+$`)

// intValue reads a JSON number as pydantic's lax integer does: an integer, or a float with no
// fractional part (2.0, 1e2); never a string, a boolean or null. detail says what is wrong.
func intValue(raw json.RawMessage) (value *big.Int, detail string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return nil, msgInteger
	}
	text := string(raw)
	if integerLiteral.MatchString(text) {
		v, ok := new(big.Int).SetString(text, 10)
		if !ok {
			return nil, msgInteger
		}
		return v, ""
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, msgInteger
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, msgFinite
	}
	if f != math.Trunc(f) {
		return nil, msgFraction
	}
	v, _ := big.NewFloat(f).Int(nil)
	return v, ""
}

func checkRange(v *big.Int, lo, hi int64) string {
	if v.Cmp(big.NewInt(lo)) < 0 {
		return "Input should be greater than or equal to " + strconv.FormatInt(lo, 10)
	}
	if v.Cmp(big.NewInt(hi)) > 0 {
		return "Input should be less than or equal to " + strconv.FormatInt(hi, 10)
	}
	return ""
}

var queryInteger = regexp.MustCompile(`^[+-]?[0-9]+(_[0-9]+)*(\.0*)?$`)

// queryInt reads an integer query parameter the way the Python apps do (surrounding spaces, a
// sign, underscores between digits and a .0 fraction accepted); the last value wins.
func queryInt(c *gin.Context, errs *fieldErrors, name string, def, lo, hi int) int {
	values := c.Request.URL.Query()[name]
	if len(values) == 0 {
		return def
	}
	text := strings.TrimSpace(values[len(values)-1])
	if !queryInteger.MatchString(text) {
		if f, err := strconv.ParseFloat(text, 64); err == nil && f != math.Trunc(f) && !strings.ContainsAny(text, "eEnN") {
			errs.add("query", name, msgFraction)
		} else {
			errs.add("query", name, msgParseInt)
		}
		return def
	}
	text = strings.ReplaceAll(text, "_", "")
	if i := strings.IndexByte(text, '.'); i >= 0 {
		text = text[:i]
	}
	v, ok := new(big.Int).SetString(strings.TrimPrefix(text, "+"), 10)
	if !ok {
		errs.add("query", name, msgParseInt)
		return def
	}
	if msg := checkRange(v, int64(lo), int64(hi)); msg != "" {
		errs.add("query", name, msg)
		return def
	}
	return int(v.Int64())
}

// itemCreate validates an ItemCreate body.
func itemCreate(body []byte, errs *fieldErrors) stores.ItemCreate {
	var in stores.ItemCreate
	obj, ok := object(body)
	if !ok {
		errs.add("body", "", msgObject)
		return in
	}
	for key := range obj {
		if key != "name" && key != "quantity" {
			errs.add("body", pointer(key), msgExtra)
		}
	}
	raw, present := obj["name"]
	switch name, isString := stringValue(raw); {
	case !present:
		errs.add("body", "/name", msgRequired)
	case !isString:
		errs.add("body", "/name", msgString)
	case utf8.RuneCountInString(name) < 1:
		errs.add("body", "/name", "String should have at least 1 character")
	case utf8.RuneCountInString(name) > 100:
		errs.add("body", "/name", "String should have at most 100 characters")
	case strings.ContainsRune(name, 0):
		errs.add("body", "/name", msgNoNUL)
	default:
		in.Name = name
	}
	if raw, present := obj["quantity"]; present {
		v, detail := intValue(raw)
		if detail == "" {
			detail = checkRange(v, 0, math.MaxInt32)
		}
		if detail != "" {
			errs.add("body", "/quantity", detail)
		} else {
			in.Quantity = v.Int64()
		}
	}
	return in
}

// cacheWrite validates a CacheWrite body.
func cacheWrite(body []byte, errs *fieldErrors) (value string, ttl *int64) {
	obj, ok := object(body)
	if !ok {
		errs.add("body", "", msgObject)
		return "", nil
	}
	for key := range obj {
		if key != "value" && key != "ttl_seconds" {
			errs.add("body", pointer(key), msgExtra)
		}
	}
	raw, present := obj["value"]
	switch v, isString := stringValue(raw); {
	case !present:
		errs.add("body", "/value", msgRequired)
	case !isString:
		errs.add("body", "/value", msgString)
	default:
		value = v
	}
	if raw, present := obj["ttl_seconds"]; present {
		if string(bytes.TrimSpace(raw)) == "null" {
			errs.add("body", "/ttl_seconds", msgTTLNull)
			return value, nil
		}
		v, detail := intValue(raw)
		if detail == "" {
			detail = checkRange(v, 1, stores.MaxCacheTTL)
		}
		if detail != "" {
			errs.add("body", "/ttl_seconds", detail)
		} else {
			n := v.Int64()
			ttl = &n
		}
	}
	return value, ttl
}

func checkCacheKey(key string, errs *fieldErrors) {
	switch {
	case !stores.ValidCacheKey(key) && key != "." && key != "..":
		errs.add("path", "key", msgCacheKey)
	case key == "." || key == "..":
		errs.add("path", "key", msgDotSegment)
	}
}

func checkQueueName(queue string, errs *fieldErrors) {
	switch {
	case stores.ValidQueueName(queue):
	case queue == "." || queue == "..":
		errs.add("path", "queue", msgDotSegment)
	case strings.HasPrefix(queue, "amq.") && len(queue) <= 200 && queueChars.MatchString(queue):
		errs.add("path", "queue", msgAmq)
	default:
		errs.add("path", "queue", msgQueueName)
	}
}
