package problems

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
)

func TestNewKeepsOptionalMembersWhereTheContractAllowsThem(t *testing.T) {
	errs := []FieldError{{Location: "body", Field: "/name", Detail: "Field required"}}
	tests := []struct {
		name           string
		status         int
		dependency     string
		wantDependency string
		wantErrors     bool
	}{
		{"503 names the dependency", 503, "postgres", "postgres", false},
		{"504 names the dependency", 504, "redis", "redis", false},
		{"404 never names one", 404, "postgres", "", false},
		{"unknown dependency is dropped", 503, "nope", "", false},
		{"422 lists errors", 422, "", "", true},
		{"400 has no errors", 400, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(tt.status, "d.", "/x", "rid", tt.dependency, errs)
			if p.Dependency != tt.wantDependency {
				t.Errorf("dependency = %q, want %q", p.Dependency, tt.wantDependency)
			}
			if (len(p.Errors) > 0) != tt.wantErrors {
				t.Errorf("errors = %v, want present %v", p.Errors, tt.wantErrors)
			}
			if p.Type != "about:blank" || p.Status != tt.status || p.Title != Reason(tt.status) {
				t.Errorf("bad problem %+v", p)
			}
		})
	}
}

func TestReasonIsRFC9110(t *testing.T) {
	for status, want := range map[int]string{413: "Content Too Large", 422: "Unprocessable Content", 504: "Gateway Timeout", 429: "Too Many Requests"} {
		if got := Reason(status); got != want {
			t.Errorf("Reason(%d) = %q, want %q", status, got, want)
		}
	}
}

func TestEscapePath(t *testing.T) {
	tests := map[string]string{
		"/examples/cache/session:42": "/examples/cache/session:42",
		"/examples/cache/bad key":    "/examples/cache/bad%20key",
		"/examples/cache/é":          "/examples/cache/%C3%A9",
		"/a~b/c@d=e":                 "/a~b/c@d=e",
		"/q?x":                       "/q%3Fx",
	}
	for in, want := range tests {
		if got := EscapePath(in); got != want {
			t.Errorf("EscapePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSentence(t *testing.T) {
	tests := map[string]string{
		"no postgres item has this id": "No postgres item has this id.",
		"done!":                        "Done!",
		"":                             "The request failed.",
		"émoi":                         "Émoi.",
	}
	for in, want := range tests {
		if got := Sentence(in); got != want {
			t.Errorf("Sentence(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteSendsProblemJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, New(404, "No resource exists at this path.", "/nope", "abc", "", nil))
	if rec.Code != 404 || rec.Header().Get("Content-Type") != MediaType {
		t.Fatalf("got %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "about:blank", "title": "Not Found", "status": 404.0, "detail": "No resource exists at this path.", "instance": "/nope", "request_id": "abc"}
	if len(body) != len(want) {
		t.Fatalf("members %v, want exactly %v", body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}
}
