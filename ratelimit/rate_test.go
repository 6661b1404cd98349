package ratelimit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/ratelimit"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in        string
		want      ratelimit.Rate
		wantBurst int
		wantErr   string
	}{
		{in: "", want: ratelimit.Rate{}},
		{in: "  ", want: ratelimit.Rate{}},
		{in: "100/s", want: ratelimit.Rate{N: 100, Per: time.Second}, wantBurst: 10},
		{in: "20/m", want: ratelimit.Rate{N: 20, Per: time.Minute}, wantBurst: 1},
		{in: "5000/h", want: ratelimit.Rate{N: 5000, Per: time.Hour}, wantBurst: 1},
		{in: "1/s", want: ratelimit.Rate{N: 1, Per: time.Second}, wantBurst: 1},
		{in: "2000/s", want: ratelimit.Rate{N: 2000, Per: time.Second}, wantBurst: 200},
		{in: " 7 / s ", want: ratelimit.Rate{N: 7, Per: time.Second}, wantBurst: 1},
		{in: "100", wantErr: "no unit"},
		{in: "100/d", wantErr: `unknown unit "d"`},
		{in: "100/sec", wantErr: `unknown unit "sec"`},
		{in: "0/s", wantErr: "at least 1"},
		{in: "-5/s", wantErr: "at least 1"},
		{in: "1.5/s", wantErr: "not a whole number"},
		{in: "fast", wantErr: "no unit"},
		{in: "/s", wantErr: "not a whole number"},
	} {
		got, err := ratelimit.ParseRate(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || herald.ErrorCode(err) != herald.EINVALID {
				t.Errorf("ParseRate(%q) = %v, %v; want an EINVALID error saying %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		if !got.Unlimited() && got.Burst() != tc.wantBurst {
			t.Errorf("ParseRate(%q).Burst() = %d, want %d", tc.in, got.Burst(), tc.wantBurst)
		}
		if !got.Unlimited() {
			if again, err := ratelimit.ParseRate(got.String()); err != nil || again != got {
				t.Errorf("ParseRate(%q) does not read back its String %q: %v, %v", tc.in, got.String(), again, err)
			}
		}
	}
}
