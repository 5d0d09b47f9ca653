package stepupotel

import (
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// A park's Trace comes back from the Store (sealed by the guard, so only
// what formatTrace wrote): whatever the string, parseTrace answers a valid
// span context or none, and a valid one survives formatting again.
func FuzzParseTrace(f *testing.F) {
	for _, s := range []string{"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-00000000000000000000000000000000-b7ad6b7169203331-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", "garbage"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc := parseTrace(s)
		if !sc.IsValid() {
			return
		}
		again := parseTrace(formatTrace(sc))
		if !again.Equal(sc.WithRemote(true)) {
			t.Fatalf("%q: %v, then %v", s, sc, again)
		}
	})
}

func TestFormatTraceOfNoSpanIsEmpty(t *testing.T) {
	if got := formatTrace(trace.SpanContext{}); got != "" {
		t.Fatalf("formatTrace of an invalid span context = %q", got)
	}
}
