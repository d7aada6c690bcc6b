package ratelimit

import (
	"testing"
	"time"
)

func TestWindowPosition(t *testing.T) {
	tests := []struct {
		now   time.Time
		index int64
		reset int
	}{
		{time.Unix(120, 0), 2, 60},
		{time.Unix(179, 500_000_000), 2, 1},
		{time.Unix(150, 0), 2, 30},
	}
	for _, tt := range tests {
		index, reset := WindowPosition(tt.now, 60)
		if index != tt.index || reset != tt.reset {
			t.Errorf("WindowPosition(%v) = %d %d, want %d %d", tt.now, index, reset, tt.index, tt.reset)
		}
	}
}

func TestDecideAndKey(t *testing.T) {
	if d := Decide(3, 3, 60, 10); !d.Allowed || d.Remaining != 0 {
		t.Errorf("the limit itself is allowed: %+v", d)
	}
	if d := Decide(4, 3, 60, 10); d.Allowed || d.Remaining != 0 {
		t.Errorf("over the limit: %+v", d)
	}
	if k := Key("127.0.0.1", 29466666); k != "devstack:ratelimit:127.0.0.1:29466666" {
		t.Errorf("key %q: the Python apps' key is shared", k)
	}
}
