package jsonrules

import (
	"strings"
	"testing"
)

func TestTooDeep(t *testing.T) {
	tests := map[string]bool{
		strings.Repeat("[", 64) + strings.Repeat("]", 64): false,
		strings.Repeat("[", 65) + strings.Repeat("]", 65): true,
		strings.Repeat("[", 100000):                       true,
		`{"a":"` + strings.Repeat("[", 100) + `"}`:        false,
		`{"a":"\"` + strings.Repeat("{", 100) + `"}`:      false,
		`{"n": 1}`: false,
	}
	for in, want := range tests {
		if got := TooDeep([]byte(in)); got != want {
			t.Errorf("TooDeep(%.40q) = %v, want %v", in, got, want)
		}
	}
}

func TestFirst(t *testing.T) {
	tests := []struct {
		in     string
		field  string
		detail string
	}{
		{`{"name":"a\ud800b"}`, "/name", DetailSurrogate},
		{`{"name":"a\udc00b"}`, "/name", DetailSurrogate},
		{`{"name":"\ud83d\ude00"}`, "", ""},
		{`{"ttl_seconds":1e400}`, "/ttl_seconds", DetailNumber},
		{`{"n":-1e400}`, "/n", DetailNumber},
		{`{"n":1e-400}`, "", ""},
		{`{"\ud800": 1, "name": "x"}`, "", DetailMember},
		{`{"a": {"\udfff": 1}}`, "/a", DetailMember},
		{`{"a": [1, "ok", "\ud800"]}`, "/a/2", DetailSurrogate},
		{`{"a/b": 1e999, "c": "\ud800"}`, "/a~1b", DetailNumber},
		{`{"a": true, "b": false, "c": null, "d": [{}], "e": "\\u"}`, "", ""},
	}
	for _, tt := range tests {
		v, found := First([]byte(tt.in))
		if found != (tt.detail != "") || v.Field != tt.field || v.Detail != tt.detail {
			t.Errorf("First(%s) = %+v %v, want %q %q", tt.in, v, found, tt.field, tt.detail)
		}
	}
}
