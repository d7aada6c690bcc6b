// Package apperr is the small error tree every layer returns and the HTTP layer maps to
// problem documents, as devstack_client's errors.py does for the Python apps:
//
//	NotFound        404: the item, key, queue, secret or node does not exist
//	InvalidInput    422: an argument a use case refuses, or a value a server refused
//	Dependency      a dependency failed; Dependency names it
//	  Timeout=false 503 (with Retry-After): down, refusing us, or not ready
//	  Timeout=true  504: no answer within the operation's timeout
//
// Messages never hold secret values or raw server text; the cause is kept for logs only.
package apperr

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultRetryAfter is the Retry-After (seconds) of a 503, as the Python library sends.
const DefaultRetryAfter = 5

// NotFoundError is a 404.
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

// InvalidInputError is a 422 raised by a use case (not by request validation).
type InvalidInputError struct {
	Msg   string
	Cause error
}

func (e *InvalidInputError) Error() string { return e.Msg }
func (e *InvalidInputError) Unwrap() error { return e.Cause }

// DependencyError is a 503 (Timeout false) or a 504 (Timeout true).
type DependencyError struct {
	Dependency string
	Reason     string
	Timeout    bool
	RetryAfter int
	Cause      error
}

func (e *DependencyError) Error() string { return e.Dependency + ": " + e.Reason }
func (e *DependencyError) Unwrap() error { return e.Cause }

// Status is the HTTP status the error stands for.
func (e *DependencyError) Status() int {
	if e.Timeout {
		return 504
	}
	return 503
}

// NotFound builds a NotFoundError from a format.
func NotFound(format string, args ...any) error {
	return &NotFoundError{Msg: fmt.Sprintf(format, args...)}
}

// Invalid builds an InvalidInputError.
func Invalid(cause error, format string, args ...any) error {
	return &InvalidInputError{Msg: fmt.Sprintf(format, args...), Cause: cause}
}

// Unavailable is a 503 for dependency, with a short reason (no server text).
func Unavailable(dependency, reason string, cause error) error {
	return &DependencyError{Dependency: dependency, Reason: reason, RetryAfter: DefaultRetryAfter, Cause: cause}
}

// Timeout is a 504 for dependency.
func Timeout(dependency, reason string, cause error) error {
	return &DependencyError{Dependency: dependency, Reason: reason, Timeout: true, Cause: cause}
}

// AsDependency finds a DependencyError in err's chain.
func AsDependency(err error) (*DependencyError, bool) {
	var d *DependencyError
	ok := errors.As(err, &d)
	return d, ok
}

// IsNotFound reports whether err is (or wraps) a NotFoundError.
func IsNotFound(err error) bool {
	var n *NotFoundError
	return errors.As(err, &n)
}

// Repr quotes s as Python's repr does (single quotes unless s holds one and no double quote),
// so that a detail reads the same as the Python apps' ("Cache key 'x' does not exist.").
func Repr(s string) string {
	quote := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		quote = `"`
	}
	var b strings.Builder
	b.WriteString(quote)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case string(r) == quote:
			b.WriteString(`\` + quote)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString(quote)
	return b.String()
}
