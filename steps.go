package stepup

import "context"

// StepName names a step of the guard that takes time: a call to
// Authsignal, a write to the Store, or the run of a parked request.
type StepName string

// The steps Config.OnStep is told about.
const (
	StepTrack    StepName = "track"    // the track call to Authsignal
	StepValidate StepName = "validate" // the validate call to Authsignal
	StepPark     StepName = "park"     // a challenged request written to the Store
	StepReplay   StepName = "replay"   // a parked request run through the application after its challenge
)

// Step describes a step for Config.OnStep. It never holds a token, a
// body, a cookie or a key.
type Step struct {
	Name   StepName
	Action string
	// Trace links a replay to the request that parked it, on whichever
	// instance each runs. OnStep may set it on a StepPark (up to
	// maxTraceLen printable ASCII bytes, a W3C traceparent for example;
	// anything else is dropped): the guard keeps it sealed with the parked
	// request, and the StepReplay of that park carries it.
	Trace string
}

// maxTraceLen bounds Step.Trace, kept with each park.
const maxTraceLen = 256

// startStep tells Config.OnStep that step begins and returns the context
// it runs in and the function that ends it; without OnStep, ctx and a
// function that does nothing.
func (g *Guard) startStep(ctx context.Context, step *Step) (context.Context, func(error)) {
	if g.cfg.OnStep == nil {
		return ctx, func(error) {}
	}
	sctx, end := g.cfg.OnStep(ctx, step)
	if sctx == nil {
		sctx = ctx
	}
	if end == nil {
		end = func(error) {}
	}
	if !validTrace(step.Trace) {
		step.Trace = ""
	}
	return sctx, end
}

// validTrace accepts what a park may keep as its Trace.
func validTrace(s string) bool {
	if len(s) > maxTraceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
