package stepupotel_test

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stepupkit/stepup"
	stepupotel "github.com/stepupkit/stepup/telemetry/otel"
)

// Instrument a guard's Config; here the decisions are fed by hand and read
// back with the SDK's ManualReader, as an exporter would read them.
func ExampleTelemetry_Instrument() {
	reader := sdkmetric.NewManualReader()
	tel, err := stepupotel.New(stepupotel.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	if err != nil {
		panic(err)
	}
	cfg := stepup.Config{ /* Provider, Sessions, UserID, CallbackURL, Policies… */ }
	tel.Instrument(&cfg)

	ctx := context.Background()
	cfg.OnEvent(ctx, stepup.Event{Type: stepup.EventChallenge, Action: "transfer", Reason: "browser"})
	cfg.OnEvent(ctx, stepup.Event{Type: stepup.EventReplay, Action: "transfer", Reason: "callback"})

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(ctx, &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		total := int64(0)
		for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
			total += dp.Value
		}
		fmt.Println(m.Name, total)
	}
	// Output:
	// stepup.decisions 2
	// stepup.challenges 1
}
