// Package jsonrules holds the contract's "values past the syntax" (docs/api.md): what JSON's
// grammar allows and nothing after the parser can carry. A body is refused (422) when its
// objects and arrays nest deeper than 64 levels (counted on the raw text, string contents
// skipped, before any parsing), when a string or a member name holds a lone surrogate escape,
// or when a number is not finite as a double. Only the first violation is reported: nesting,
// then the first string or number in document order.
package jsonrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// MaxDepth is the deepest nesting accepted (the outermost object or array is level 1).
const MaxDepth = 64

// The details of each rule (the same words in every implementation).
const (
	DetailDepth     = "nests objects and arrays deeper than 64 levels"
	DetailSurrogate = "must not contain a lone surrogate (U+D800 to U+DFFF)"
	DetailMember    = "has a member name with a lone surrogate (U+D800 to U+DFFF)"
	DetailNumber    = "is a number out of range (not finite as a double)"
)

// Violation is where a body breaks a rule: a JSON Pointer and what is wrong.
type Violation struct {
	Field  string
	Detail string
}

// TooDeep reports whether data nests deeper than MaxDepth, counted on the raw text with the
// contents of strings skipped; data need not be valid JSON.
func TooDeep(data []byte) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > MaxDepth {
				return true
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return false
}

// First finds the first string or number of a syntactically valid document that breaks a rule.
func First(data []byte) (Violation, bool) {
	w := walker{s: data}
	v, found := w.value("")
	return v, found
}

type walker struct {
	s []byte
	i int
}

func (w *walker) ws() {
	for w.i < len(w.s) && (w.s[w.i] == ' ' || w.s[w.i] == '\t' || w.s[w.i] == '\n' || w.s[w.i] == '\r') {
		w.i++
	}
}

// Pointer appends a member name to a JSON Pointer (RFC 6901).
func Pointer(base, member string) string {
	return base + "/" + strings.ReplaceAll(strings.ReplaceAll(member, "~", "~0"), "/", "~1")
}

func (w *walker) value(ptr string) (Violation, bool) {
	w.ws()
	if w.i >= len(w.s) {
		return Violation{}, false
	}
	switch c := w.s[w.i]; {
	case c == '{':
		w.i++
		for {
			w.ws()
			if w.i >= len(w.s) || w.s[w.i] == '}' {
				w.i++
				return Violation{}, false
			}
			raw, lone := w.str()
			if lone {
				return Violation{ptr, DetailMember}, true
			}
			var name string
			_ = json.Unmarshal(raw, &name)
			w.ws()
			w.i++ // ':'
			if v, found := w.value(Pointer(ptr, name)); found {
				return v, true
			}
			w.ws()
			if w.i < len(w.s) && w.s[w.i] == ',' {
				w.i++
			}
		}
	case c == '[':
		w.i++
		for index := 0; ; index++ {
			w.ws()
			if w.i >= len(w.s) || w.s[w.i] == ']' {
				w.i++
				return Violation{}, false
			}
			if v, found := w.value(ptr + "/" + strconv.Itoa(index)); found {
				return v, true
			}
			w.ws()
			if w.i < len(w.s) && w.s[w.i] == ',' {
				w.i++
			}
		}
	case c == '"':
		if _, lone := w.str(); lone {
			return Violation{ptr, DetailSurrogate}, true
		}
	case c == 't' || c == 'n':
		w.i += 4
	case c == 'f':
		w.i += 5
	default:
		start := w.i
		for w.i < len(w.s) && bytes.IndexByte([]byte("+-0123456789.eE"), w.s[w.i]) >= 0 {
			w.i++
		}
		if !Finite(string(w.s[start:w.i])) {
			return Violation{ptr, DetailNumber}, true
		}
	}
	return Violation{}, false
}

// Finite reports whether a JSON number is finite as a double.
func Finite(number string) bool {
	f, err := strconv.ParseFloat(number, 64)
	return !(errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0))
}

// str reads a string at w.i (the opening quote); lone reports a lone surrogate escape in it.
func (w *walker) str() (raw []byte, lone bool) {
	start := w.i
	w.i++
	for w.i < len(w.s) {
		c := w.s[w.i]
		if c == '"' {
			w.i++
			return w.s[start:w.i], lone
		}
		if c != '\\' {
			w.i++
			continue
		}
		if w.i+1 < len(w.s) && w.s[w.i+1] == 'u' {
			code := hex4(w.s, w.i+2)
			w.i += 6
			switch {
			case code >= 0xD800 && code <= 0xDBFF:
				if w.i+1 < len(w.s) && w.s[w.i] == '\\' && w.s[w.i+1] == 'u' {
					if low := hex4(w.s, w.i+2); low >= 0xDC00 && low <= 0xDFFF {
						w.i += 6
						continue
					}
				}
				lone = true
			case code >= 0xDC00 && code <= 0xDFFF:
				lone = true
			}
			continue
		}
		w.i += 2
	}
	return w.s[start:], lone
}

func hex4(s []byte, at int) int {
	if at+4 > len(s) {
		return -1
	}
	v, err := strconv.ParseUint(string(s[at:at+4]), 16, 32)
	if err != nil {
		return -1
	}
	return int(v)
}
