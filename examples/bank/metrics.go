package main

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	stepupotel "github.com/stepupkit/stepup/telemetry/otel"
)

// metrics is the guard's telemetry (telemetry/otel) exported through the
// OpenTelemetry Prometheus exporter, served at /metrics: decisions by
// action and reason, challenges, Authsignal latency, park and replay
// durations, Store errors. The values are action codes, reasons and fixed
// words: no user id, path or token. A real deployment serves /metrics on
// an internal port, or behind authentication; the demo serves it openly.
type metrics struct {
	tel      *stepupotel.Telemetry
	handler  http.Handler
	shutdown func(context.Context) error
}

func newMetrics() (*metrics, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	tel, err := stepupotel.New(stepupotel.WithMeterProvider(mp))
	if err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, err
	}
	return &metrics{tel: tel, handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), shutdown: mp.Shutdown}, nil
}
