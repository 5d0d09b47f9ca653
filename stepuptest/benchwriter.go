package stepuptest

import (
	"net/http"
	"strings"
)

// BenchWriter is an http.ResponseWriter for benchmarks: it keeps only the
// status and reuses its header map, so that the writer costs the same in
// every case a benchmark compares. Reset it between iterations.
type BenchWriter struct {
	h    http.Header
	Code int // the first status written; 200 once a body is written without one
}

// NewBenchWriter returns an empty BenchWriter.
func NewBenchWriter() *BenchWriter { return &BenchWriter{h: http.Header{}} }

// Header implements http.ResponseWriter.
func (w *BenchWriter) Header() http.Header { return w.h }

// Write implements http.ResponseWriter; it discards p.
func (w *BenchWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}

// WriteHeader implements http.ResponseWriter; only the first status counts.
func (w *BenchWriter) WriteHeader(code int) {
	if w.Code == 0 {
		w.Code = code
	}
}

// Reset empties the writer for the next iteration.
func (w *BenchWriter) Reset() {
	clear(w.h)
	w.Code = 0
}

// Cookie returns the name=value of the last Set-Cookie for name, or "".
func (w *BenchWriter) Cookie(name string) string {
	vs := w.h.Values("Set-Cookie")
	for i := len(vs) - 1; i >= 0; i-- {
		if c, _, _ := strings.Cut(vs[i], ";"); strings.HasPrefix(c, name+"=") {
			return c
		}
	}
	return ""
}
