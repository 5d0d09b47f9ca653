package stepupotel_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/stepupkit/stepup"
	stepupotel "github.com/stepupkit/stepup/telemetry/otel"
)

// What telemetry adds to a guard's decision and to a step, with the SDK
// recording (a ManualReader nobody collects, spans sampled and dropped by
// no processor), beside the baseline of no telemetry at all.
func BenchmarkTelemetry(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider()
	tel, err := stepupotel.New(stepupotel.WithMeterProvider(mp), stepupotel.WithTracerProvider(tp))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ev := stepup.Event{Type: stepup.EventAllow, Action: "transfer", Reason: "allow"}
	b.Run("baseline: no OnEvent", func(b *testing.B) {
		var cfg stepup.Config
		b.ReportAllocs()
		for b.Loop() {
			if cfg.OnEvent != nil {
				cfg.OnEvent(ctx, ev)
			}
		}
	})
	b.Run("OnEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tel.OnEvent(ctx, ev)
		}
	})
	b.Run("OnStep park, span and duration", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			step := &stepup.Step{Name: stepup.StepPark, Action: "transfer"}
			_, end := tel.OnStep(ctx, step)
			end(nil)
		}
	})
	b.Run("OnStep replay, with its link", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			step := &stepup.Step{Name: stepup.StepReplay, Action: "transfer", Trace: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
			_, end := tel.OnStep(ctx, step)
			end(nil)
		}
	})
}
