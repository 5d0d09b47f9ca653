package main

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// /metrics serves the guard's telemetry in Prometheus's format: after one
// large transfer (challenged, verified, replayed), its challenge, its
// replay, its Authsignal calls and its park and replay durations.
func TestMetricsExposeOneFlow(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser().login("alice")
	resp := alice.get(tb.complete(tb.challenged(alice.post("/transfer", url.Values{"amount": {"5000"}, "to": {"bob"}}))))
	require.Equal(t, http.StatusSeeOther, resp.Status, resp.Body)

	page := tb.newUser().get("/metrics")
	require.Equal(t, http.StatusOK, page.Status)
	assert.Contains(t, page.Header.Get("Content-Type"), "text/plain")
	for _, want := range []string{
		`stepup_challenges_total{otel_scope_name="github.com/stepupkit/stepup/telemetry/otel",otel_scope_schema_url="",otel_scope_version="",stepup_action="transfer"} 1`,
		`stepup_decisions_total{.*stepup_action="transfer",stepup_event="challenge",stepup_reason="browser"} 1`,
		`stepup_decisions_total{.*stepup_action="transfer",stepup_event="replay",stepup_reason="callback"} 1`,
		`stepup_provider_duration_seconds_count{.*stepup_action="transfer",stepup_outcome="ok",stepup_step="track"} 1`,
		`stepup_provider_duration_seconds_count{.*stepup_action="transfer",stepup_outcome="ok",stepup_step="validate"} 1`,
		`stepup_step_duration_seconds_count{.*stepup_action="transfer",stepup_outcome="ok",stepup_step="park"} 1`,
		`stepup_step_duration_seconds_count{.*stepup_action="transfer",stepup_outcome="ok",stepup_step="replay"} 1`,
	} {
		assert.Regexp(t, regexp.MustCompile(`(?m)^`+want+`$`), page.Body) // each a pattern: ".*" for the scope labels
	}
	assert.NotContains(t, page.Body, `"alice"`, "no user id")
}
