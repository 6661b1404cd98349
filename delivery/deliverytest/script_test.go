package deliverytest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The failure scripting both sinks share, request by request.
func TestScriptFailures(t *testing.T) {
	s := newScript()
	s.fail("a", failure{code: 451, remaining: 2})
	s.fail("b", failure{code: 550, remaining: -1})
	s.fail("c", failure{code: 503, remaining: 1})
	s.fail("c", failure{remaining: 0}) // removed again

	type answer struct {
		Code             int
		Everyone, Failed bool
	}
	take := func(key string) answer {
		code, everyone, failed := s.takeFailure(key)
		return answer{code, everyone, failed}
	}
	var got []answer
	got = append(got, take("a"), take("c"))
	s.setFailAll("test", 503)
	got = append(got, take("a"), take("b"))
	s.setFailAll("test", 0)
	got = append(got, take("a"), take("a"), take("b"), take("b"))
	want := []answer{
		{451, false, true}, {0, false, false}, // a's first; c has none
		{503, true, true}, {503, true, true}, // everyone, leaving a's and b's own
		{451, false, true}, {0, false, false}, // a's second, then none
		{550, false, true}, {550, false, true}, // b always
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
}

func TestScriptDelays(t *testing.T) {
	s := newScript()
	s.delays["a"] = 10 * time.Millisecond
	s.delayTimes("a", 2, 30*time.Millisecond)
	s.delayTimes("b", 1, 20*time.Millisecond)
	s.delayTimes("b", 0, 20*time.Millisecond) // removed again
	got := []time.Duration{s.delayFor("a"), s.delayFor("a"), s.delayFor("a"), s.delayFor("b")}
	want := []time.Duration{30 * time.Millisecond, 30 * time.Millisecond, 10 * time.Millisecond, 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
}

func TestSetFailAllRefusesAnAcceptingCode(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("FailAll(250) did not panic")
		}
	}()
	s := newScript()
	s.setFailAll("test", 250)
}
