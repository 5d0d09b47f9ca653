// Package stepupotel turns a stepup guard's decisions and steps into
// OpenTelemetry metrics and spans. It uses only the OpenTelemetry API: the
// application chooses the SDK and the exporters (Prometheus, OTLP, …).
//
//	tel, err := stepupotel.New() // the global MeterProvider and TracerProvider
//	cfg := stepup.Config{ … }
//	tel.Instrument(&cfg)         // sets cfg.OnEvent and cfg.OnStep, keeping the ones set before
//	guard, err := stepup.New(cfg)
//
// Metrics (the instrument names are stable):
//
//	stepup.decisions         counter    every decision (Config.OnEvent): stepup.event, stepup.action, stepup.reason
//	stepup.challenges        counter    challenges sent: stepup.action
//	stepup.provider.duration histogram  seconds per Authsignal call: stepup.step (track, validate), stepup.action, stepup.outcome (ok, error)
//	stepup.step.duration     histogram  seconds per park (Store write) and replay (the parked request's run): stepup.step, stepup.action, stepup.outcome
//	stepup.store.errors      counter    requests refused because the Store could not answer: stepup.action, stepup.store.error (full, unavailable)
//
// Spans: stepup.track and stepup.validate (client spans around the calls to
// Authsignal), stepup.park (the Store write of a challenged request) and
// stepup.replay (the parked request run through the application after its
// challenge). The replay span is linked to the park span of the request it
// replays, on whichever instance each ran: the park span's context is kept
// sealed with the park (stepup.Step.Trace). Each decision is also an event
// on the request's current span.
//
// No attribute holds a user id, a token, a body or a path with ids in it:
// the values are the policy's action codes, the guard's event types and
// reasons, and fixed words, so every metric has a bounded number of series.
package stepupotel

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/stepupkit/stepup"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/stepupkit/stepup/telemetry/otel"

// Attribute keys.
const (
	KeyEvent      = attribute.Key("stepup.event")       // the decision: allow, challenge, block, review, replay, refuse, fail_open, sign_in
	KeyAction     = attribute.Key("stepup.action")      // the Authsignal action code
	KeyReason     = attribute.Key("stepup.reason")      // the decision's reason: "browser", "pass", a refusal's code…
	KeyStep       = attribute.Key("stepup.step")        // track, validate, park, replay
	KeyOutcome    = attribute.Key("stepup.outcome")     // ok or error
	KeyStoreError = attribute.Key("stepup.store.error") // full or unavailable
	KeySignIn     = attribute.Key("stepup.sign_in")     // true for the decisions of a sign-in
)

// Telemetry records a guard's events and steps. It is safe for concurrent
// use; one Telemetry may serve several guards.
type Telemetry struct {
	tracer      trace.Tracer
	decisions   metric.Int64Counter
	challenges  metric.Int64Counter
	provider    metric.Float64Histogram
	steps       metric.Float64Histogram
	storeErrors metric.Int64Counter
	now         func() time.Time
}

// Option configures New.
type Option func(*options)

type options struct {
	meters  metric.MeterProvider
	tracers trace.TracerProvider
}

// WithMeterProvider sets where the metrics go. Default otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meters = mp }
}

// WithTracerProvider sets where the spans go. Default otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracers = tp }
}

// New creates the instruments.
func New(opts ...Option) (*Telemetry, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.meters == nil {
		o.meters = otel.GetMeterProvider()
	}
	if o.tracers == nil {
		o.tracers = otel.GetTracerProvider()
	}
	meter := o.meters.Meter(ScopeName)
	t := &Telemetry{tracer: o.tracers.Tracer(ScopeName), now: time.Now}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	t.decisions, err = meter.Int64Counter("stepup.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Decisions of the step-up guard, by event, action and reason."))
	add(err)
	t.challenges, err = meter.Int64Counter("stepup.challenges", metric.WithUnit("{challenge}"),
		metric.WithDescription("Challenges the step-up guard sent, by action."))
	add(err)
	buckets := metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
	t.provider, err = meter.Float64Histogram("stepup.provider.duration", metric.WithUnit("s"), buckets,
		metric.WithDescription("Duration of the calls to Authsignal (track, validate)."))
	add(err)
	t.steps, err = meter.Float64Histogram("stepup.step.duration", metric.WithUnit("s"), buckets,
		metric.WithDescription("Duration of the park (Store write) and replay (the parked request's run) steps."))
	add(err)
	t.storeErrors, err = meter.Int64Counter("stepup.store.errors", metric.WithUnit("{error}"),
		metric.WithDescription("Requests the step-up guard refused because its Store could not answer."))
	add(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// Instrument sets cfg.OnEvent and cfg.OnStep to record with t, calling
// the functions cfg held before too (their results are used: the context a
// previous OnStep returns is where the span starts).
func (t *Telemetry) Instrument(cfg *stepup.Config) {
	if prev := cfg.OnEvent; prev != nil {
		cfg.OnEvent = func(ctx context.Context, ev stepup.Event) {
			prev(ctx, ev)
			t.OnEvent(ctx, ev)
		}
	} else {
		cfg.OnEvent = t.OnEvent
	}
	if prev := cfg.OnStep; prev != nil {
		cfg.OnStep = func(ctx context.Context, s *stepup.Step) (context.Context, func(error)) {
			pctx, pend := prev(ctx, s)
			if pctx == nil {
				pctx = ctx
			}
			tctx, tend := t.OnStep(pctx, s)
			return tctx, func(err error) {
				tend(err)
				if pend != nil {
					pend(err)
				}
			}
		}
	} else {
		cfg.OnStep = t.OnStep
	}
}

// OnEvent records a decision; it is a stepup.Config.OnEvent.
func (t *Telemetry) OnEvent(ctx context.Context, ev stepup.Event) {
	attrs := []attribute.KeyValue{KeyEvent.String(string(ev.Type)), KeyAction.String(ev.Action), KeyReason.String(ev.Reason)}
	if ev.SignIn {
		attrs = append(attrs, KeySignIn.Bool(true))
	}
	set := metric.WithAttributeSet(attribute.NewSet(attrs...))
	t.decisions.Add(ctx, 1, set)
	if ev.Type == stepup.EventChallenge {
		t.challenges.Add(ctx, 1, metric.WithAttributes(KeyAction.String(ev.Action)))
	}
	if kind := storeError(ev); kind != "" {
		t.storeErrors.Add(ctx, 1, metric.WithAttributes(KeyAction.String(ev.Action), KeyStoreError.String(kind)))
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("stepup."+string(ev.Type), trace.WithAttributes(attrs...))
	}
}

// storeError says how a refusal came from the Store: "full", "unavailable",
// or "" for any other event. The guard answers "busy" (503) when its Store
// cannot take or give a record.
func storeError(ev stepup.Event) string {
	if ev.Type != stepup.EventRefuse || ev.Reason != "busy" || !errors.Is(ev.Err, stepup.ErrInternal) {
		return ""
	}
	if errors.Is(ev.Err, stepup.ErrStoreFull) {
		return "full"
	}
	return "unavailable"
}

// OnStep starts a span for a step and records its duration when it ends;
// it is a stepup.Config.OnStep. A park step keeps its span context in
// step.Trace (a W3C traceparent), which the replay step of the same park
// brings back as the replay span's link.
func (t *Telemetry) OnStep(ctx context.Context, step *stepup.Step) (context.Context, func(error)) {
	kind := trace.SpanKindInternal
	if step.Name == stepup.StepTrack || step.Name == stepup.StepValidate {
		kind = trace.SpanKindClient
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(kind),
		trace.WithAttributes(KeyStep.String(string(step.Name)), KeyAction.String(step.Action))}
	if step.Name == stepup.StepReplay {
		if sc := parseTrace(step.Trace); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc,
				Attributes: []attribute.KeyValue{KeyStep.String(string(stepup.StepPark))}}))
		}
	}
	ctx, span := t.tracer.Start(ctx, "stepup."+string(step.Name), opts...)
	if step.Name == stepup.StepPark {
		step.Trace = formatTrace(span.SpanContext())
	}
	start := t.now()
	name, action := step.Name, step.Action
	return ctx, func(err error) {
		outcome := "ok"
		if err != nil {
			outcome = "error"
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.SetAttributes(KeyOutcome.String(outcome))
		span.End()
		d := metric.WithAttributes(KeyStep.String(string(name)), KeyAction.String(action), KeyOutcome.String(outcome))
		secs := t.now().Sub(start).Seconds()
		if name == stepup.StepTrack || name == stepup.StepValidate {
			t.provider.Record(ctx, secs, d)
		} else {
			t.steps.Record(ctx, secs, d)
		}
	}
}

// formatTrace is sc as a W3C traceparent, "" when sc is not valid (no
// tracer is recording).
func formatTrace(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	return carrier.Get("traceparent")
}

// parseTrace reads a traceparent formatTrace wrote; anything else is an
// invalid SpanContext.
func parseTrace(s string) trace.SpanContext {
	if s == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": s})
	return trace.SpanContextFromContext(ctx)
}
