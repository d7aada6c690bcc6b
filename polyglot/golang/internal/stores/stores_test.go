package stores

import (
	"testing"
	"time"

	"devstack/polyglot/golang/internal/vault"
)

const clusterNodes = `07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:6390@16390 myself,master - 0 1700000000000 1 connected 0-5460
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:6391@16391,host master - 0 1700000000000 2 connected 5461-10922 [5462->-abc]
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:6392@16392 master,fail - 0 1700000000000 3 disconnected 10923-16383
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:6393@16393 slave 07c37dfeb235213a872192d90877d0cd55635b91 0 1700000000000 1 connected
`

func TestParseClusterNodes(t *testing.T) {
	nodes := ParseClusterNodes(clusterNodes)
	if len(nodes) != 4 || nodes[0].Address != "127.0.0.1:6390" || nodes[3].Role != "replica" {
		t.Fatalf("nodes %+v", nodes)
	}
	if nodes[1].Slots[0] != (SlotRange{5461, 10922}) || len(nodes[1].Slots) != 1 {
		t.Errorf("a migrating slot is not a range: %+v", nodes[1].Slots)
	}
	if nodes[2].Connected {
		t.Error("a failing node is not connected")
	}
	if nodes[3].MasterID == nil || *nodes[3].MasterID != nodes[0].ID || nodes[0].MasterID != nil {
		t.Error("master ids")
	}
	slots := SlotsOf(nodes)
	if !slots.Coverage.AllCovered || slots.Coverage.SlotsAssigned != 16384 || len(slots.Ranges) != 3 {
		t.Errorf("slots %+v", slots)
	}
	if len(slots.Ranges[0].Replicas) != 1 || slots.Ranges[0].Replicas[0] != "127.0.0.1:6393" {
		t.Errorf("replicas %+v", slots.Ranges[0])
	}
}

func TestCanonicalUUID(t *testing.T) {
	tests := map[string]string{
		"7D3F0E5C-8A61-4C1E-9B5E-2F4A6C8D0B12":          "7d3f0e5c-8a61-4c1e-9b5e-2f4a6c8d0b12",
		"{7d3f0e5c8a614c1e9b5e2f4a6c8d0b12}":            "7d3f0e5c-8a61-4c1e-9b5e-2f4a6c8d0b12",
		"urn:uuid:7d3f0e5c-8a61-4c1e-9b5e-2f4a6c8d0b12": "7d3f0e5c-8a61-4c1e-9b5e-2f4a6c8d0b12",
		"parity-missing":           "",
		"000000000000000000000000": "",
	}
	for in, want := range tests {
		got, ok := CanonicalUUID(in)
		if got != want || ok != (want != "") {
			t.Errorf("CanonicalUUID(%q) = %q %v", in, got, ok)
		}
	}
}

func TestFormatTimeIsPydantics(t *testing.T) {
	tests := map[time.Time]string{
		time.Date(2025, 1, 31, 12, 0, 0, 123_000_000, time.UTC):            "2025-01-31T12:00:00.123000Z",
		time.Date(2025, 1, 31, 12, 0, 0, 0, time.UTC):                      "2025-01-31T12:00:00Z",
		time.Date(2025, 1, 31, 13, 0, 0, 5_000, time.FixedZone("x", 3600)): "2025-01-31T12:00:00.000005Z",
	}
	for in, want := range tests {
		if got := FormatTime(in); got != want {
			t.Errorf("FormatTime(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestNamesAndBodies(t *testing.T) {
	for key, ok := range map[string]bool{"session:42": true, "a..b": true, ".": false, "..": false, "a*b": false, "": false} {
		if ValidCacheKey(key) != ok {
			t.Errorf("ValidCacheKey(%q) != %v", key, ok)
		}
	}
	for name, ok := range map[string]bool{"orders": true, "amq.x": false, "..": false, "bad*name": false} {
		if ValidQueueName(name) != ok {
			t.Errorf("ValidQueueName(%q) != %v", name, ok)
		}
	}
	for body, ok := range map[string]bool{`{"a":1}`: true, ` {"a":1} `: true, `[1]`: false, `not json`: false, "\xff": false, `"x"`: false} {
		if IsJSONObject([]byte(body)) != ok {
			t.Errorf("IsJSONObject(%q) != %v", body, ok)
		}
	}
	for v, want := range map[any]bool{nil: true, true: true, false: false, "False": false, "off": false, "yes": true} {
		s := &vault.Secret{Data: map[string]any{}}
		if v != nil {
			s.Data["tls_enabled"] = v
		}
		if TLSEnabled(s) != want {
			t.Errorf("TLSEnabled(%v) != %v", v, want)
		}
	}
}
