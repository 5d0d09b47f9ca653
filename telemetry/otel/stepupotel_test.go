package stepupotel_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
	stepupotel "github.com/stepupkit/stepup/telemetry/otel"
)

// recorder is an SDK reading what stepupotel records: metrics through a
// ManualReader, spans through a SpanRecorder.
type recorder struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	tel    *stepupotel.Telemetry
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()); _ = r.tp.Shutdown(context.Background()) })
	var err error
	r.tel, err = stepupotel.New(stepupotel.WithMeterProvider(mp), stepupotel.WithTracerProvider(r.tp))
	require.NoError(t, err)
	return r
}

// metrics collects every metric by name.
func (r *recorder) metrics(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, stepupotel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// counts is a counter's values by its attribute sets, each written as
// "key=value,…" in the set's order.
func counts(t *testing.T, data metricdata.Aggregation) map[string]int64 {
	t.Helper()
	sum, ok := data.(metricdata.Sum[int64])
	require.True(t, ok, "%T", data)
	out := map[string]int64{}
	for _, dp := range sum.DataPoints {
		out[setString(dp.Attributes)] = dp.Value
	}
	return out
}

// histogramCounts is a histogram's counts by attribute set.
func histogramCounts(t *testing.T, data metricdata.Aggregation) map[string]uint64 {
	t.Helper()
	h, ok := data.(metricdata.Histogram[float64])
	require.True(t, ok, "%T", data)
	out := map[string]uint64{}
	for _, dp := range h.DataPoints {
		out[setString(dp.Attributes)] = dp.Count
		assert.GreaterOrEqual(t, dp.Sum, 0.0)
	}
	return out
}

func setString(s attribute.Set) string {
	out := ""
	for _, kv := range s.ToSlice() {
		if out != "" {
			out += ","
		}
		out += string(kv.Key) + "=" + kv.Value.Emit()
	}
	return out
}

// spanNamed returns the one ended span of that name.
func (r *recorder) spanNamed(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range r.spans.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans named %s", name)
	return found[0]
}

// One whole browser flow — a large transfer challenged, the challenge
// completed, the callback replaying it — recorded as metrics and spans: the
// replay span is linked to the park span of the request it replays.
func TestOneFlowIsRecorded(t *testing.T) {
	rec := newRecorder(t)
	env := stepuptest.NewEnv(t, app, stepuptest.Options{Config: rec.tel.Instrument})
	b := env.NewBrowser()
	b.Login("alice")
	require.Equal(t, http.StatusOK, b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=10", nil).StatusCode, "allowed")
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
	require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
	require.Len(t, env.Ledger.Runs("transfer"), 2)

	m := rec.metrics(t)
	assert.Equal(t, map[string]int64{
		"stepup.action=transfer,stepup.event=allow,stepup.reason=allow":       1,
		"stepup.action=transfer,stepup.event=challenge,stepup.reason=browser": 1,
		"stepup.action=transfer,stepup.event=replay,stepup.reason=callback":   1,
	}, counts(t, m["stepup.decisions"]))
	assert.Equal(t, map[string]int64{"stepup.action=transfer": 1}, counts(t, m["stepup.challenges"]))
	assert.Equal(t, map[string]uint64{
		"stepup.action=transfer,stepup.outcome=ok,stepup.step=track":    2,
		"stepup.action=transfer,stepup.outcome=ok,stepup.step=validate": 1,
	}, histogramCounts(t, m["stepup.provider.duration"]))
	assert.Equal(t, map[string]uint64{
		"stepup.action=transfer,stepup.outcome=ok,stepup.step=park":   1,
		"stepup.action=transfer,stepup.outcome=ok,stepup.step=replay": 1,
	}, histogramCounts(t, m["stepup.step.duration"]))
	assert.NotContains(t, m, "stepup.store.errors", "no store error in this flow")

	park, replay := rec.spanNamed(t, "stepup.park"), rec.spanNamed(t, "stepup.replay")
	require.Len(t, replay.Links(), 1)
	assert.Equal(t, park.SpanContext().TraceID(), replay.Links()[0].SpanContext.TraceID())
	assert.Equal(t, park.SpanContext().SpanID(), replay.Links()[0].SpanContext.SpanID(), "the replay links to its park")
	assert.NotEqual(t, park.SpanContext().TraceID(), replay.SpanContext().TraceID(), "two requests, two traces")
	validate := rec.spanNamed(t, "stepup.validate")
	assert.Equal(t, trace.SpanKindClient, validate.SpanKind())
	assert.Equal(t, trace.SpanKindInternal, replay.SpanKind())
	for _, s := range rec.spans.Ended() {
		assert.Equal(t, codes.Unset, s.Status().Code, s.Name())
		for _, kv := range s.Attributes() {
			assert.NotEqual(t, "alice", kv.Value.Emit(), "no user id on %s", s.Name())
		}
	}
	tracks := 0
	for _, s := range rec.spans.Ended() {
		if s.Name() == "stepup.track" {
			tracks++
			assert.Equal(t, trace.SpanKindClient, s.SpanKind())
		}
	}
	assert.Equal(t, 2, tracks)
}

// The replay of a park made on another instance links to its park span
// too: the link travels with the park in the shared Store.
func TestReplayOnAnotherInstanceLinksToItsPark(t *testing.T) {
	rec := newRecorder(t)
	o := stepuptest.Options{Config: rec.tel.Instrument}
	env := stepuptest.NewEnv(t, app, o)
	other := env.Instance(app, o)
	b := env.NewBrowser()
	b.Login("alice")
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
	require.Equal(t, http.StatusOK, b.Get(stepuptest.OnInstance(cb, other)).StatusCode)
	park, replay := rec.spanNamed(t, "stepup.park"), rec.spanNamed(t, "stepup.replay")
	require.Len(t, replay.Links(), 1)
	assert.Equal(t, park.SpanContext().SpanID(), replay.Links()[0].SpanContext.SpanID())
}

// A Store that cannot answer counts as a store error, and a provider that
// fails ends its span in error.
func TestFailuresAreRecorded(t *testing.T) {
	t.Run("store", func(t *testing.T) {
		rec := newRecorder(t)
		env := stepuptest.NewEnv(t, app, stepuptest.Options{Config: rec.tel.Instrument,
			Store: func(now func() time.Time) stepup.Store { return downStore{} }})
		b := env.NewBrowser()
		b.Login("alice")
		assert.Equal(t, http.StatusServiceUnavailable, b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil).StatusCode)
		m := rec.metrics(t)
		assert.Equal(t, map[string]int64{"stepup.action=transfer,stepup.store.error=unavailable": 1},
			counts(t, m["stepup.store.errors"]))
		assert.Equal(t, codes.Error, rec.spanNamed(t, "stepup.park").Status().Code)
	})
	t.Run("provider", func(t *testing.T) {
		rec := newRecorder(t)
		env := stepuptest.NewEnv(t, app, stepuptest.Options{Config: func(c *stepup.Config) {
			rec.tel.Instrument(c)
			c.ProviderTimeout = time.Millisecond
		}, Provider: func(p stepup.Provider) stepup.Provider { return slowProvider{p} }})
		b := env.NewBrowser()
		b.Login("alice")
		assert.Equal(t, http.StatusServiceUnavailable, b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil).StatusCode)
		track := rec.spanNamed(t, "stepup.track")
		assert.Equal(t, codes.Error, track.Status().Code)
		assert.Equal(t, map[string]uint64{"stepup.action=transfer,stepup.outcome=error,stepup.step=track": 1},
			histogramCounts(t, rec.metrics(t)["stepup.provider.duration"]))
	})
}

// Instrument keeps the hooks set before it and runs them too.
func TestInstrumentKeepsEarlierHooks(t *testing.T) {
	rec := newRecorder(t)
	var events, steps, ended int
	cfg := stepup.Config{
		OnEvent: func(context.Context, stepup.Event) { events++ },
		OnStep: func(ctx context.Context, _ *stepup.Step) (context.Context, func(error)) {
			steps++
			return ctx, func(error) { ended++ }
		},
	}
	rec.tel.Instrument(&cfg)
	cfg.OnEvent(context.Background(), stepup.Event{Type: stepup.EventAllow, Action: "a"})
	_, end := cfg.OnStep(context.Background(), &stepup.Step{Name: stepup.StepTrack, Action: "a"})
	end(nil)
	assert.Equal(t, []int{1, 1, 1}, []int{events, steps, ended})
	assert.Len(t, rec.spans.Ended(), 1)
	assert.Equal(t, map[string]int64{"stepup.action=a,stepup.event=allow,stepup.reason=": 1},
		counts(t, rec.metrics(t)["stepup.decisions"]))
}

// app is a ServeMux application protecting POST /transfer as the
// conformance suite's table does.
var app = stepuptest.Adapter{
	Name:  "servemux",
	Param: func(name string) string { return "{" + name + "}" },
	Mount: func(_ testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("POST /login", h.Login)
		mux.Handle("POST /transfer", h.Transfer)
		root := g.Middleware(mux)
		mux.Handle("GET "+stepuptest.CallbackPath, g.Callback(root))
		return root
	},
}

// downStore is a Store whose server is gone.
type downStore struct{}

var errDown = errors.New("store: connection refused")

func (downStore) Put(context.Context, *stepup.Record) error { return errDown }
func (downStore) Get(context.Context, string) (*stepup.Record, error) {
	return nil, errDown
}
func (downStore) Consume(context.Context, string) (*stepup.Record, error) {
	return nil, errDown
}
func (downStore) Delete(context.Context, string) error { return errDown }

// slowProvider answers after the guard's deadline.
type slowProvider struct{ stepup.Provider }

func (p slowProvider) Track(ctx context.Context, _, _ string, _ authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
