package stepupecho_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/stepupkit/stepup"
	stepupecho "github.com/stepupkit/stepup/adapters/stepupecho"
	"github.com/stepupkit/stepup/stepuptest"
)

// echoFields is a request struct bound by echo's DefaultBinder from the
// path, the query (GET, DELETE, HEAD) and a form body, the way echo's
// documentation tags one; JSON is left to stepuptest.DiffJSON.
type echoFields struct {
	Amount string `param:"amount" query:"amount" form:"amount" json:"-"`
	To     string `param:"to" query:"to" form:"to" json:"-"`
	Desk   string `param:"desk" query:"desk" form:"desk" json:"-"`
	Kind   string `param:"kind" query:"kind" form:"kind" json:"-"`
	OK     string `param:"ok" query:"ok" form:"ok" json:"-"`
	ID     string `param:"id" query:"id" form:"id" json:"-"`
	Payee  struct {
		IBAN string `param:"iban" query:"iban" form:"iban" json:"-"`
	} `json:"-"`
}

// echoReaders reads every key of stepuptest.DiffAttributes the ways an
// echo handler does: c.Bind into tagged structs, c.FormValue, c.QueryParam
// and c.Param, on top of the net/http readers.
func echoReaders(c echo.Context) []stepuptest.Observation {
	r := c.Request()
	body, _ := io.ReadAll(r.Body)
	reset := func() { r.Body = io.NopCloser(bytes.NewReader(body)) }
	var seen []stepuptest.Observation
	add := func(reader, key string, v any) {
		seen = append(seen, stepuptest.Observation{Reader: reader, Key: key, Value: v})
	}

	reset()
	var f echoFields
	if c.Bind(&f) == nil {
		for key, v := range map[string]string{"amount": f.Amount, "to": f.To, "desk": f.Desk, "kind": f.Kind,
			"ok": f.OK, "id": f.ID, "payee.iban": f.Payee.IBAN} {
			if v != "" {
				add("echo Bind (param, query, form)", key, v)
			}
		}
	}
	reset()
	var j stepuptest.DiffJSON
	if c.Bind(&j) == nil {
		j.Observe("echo Bind (JSON)", add)
	}
	reset()
	if params, err := c.FormParams(); err == nil {
		for _, a := range stepuptest.DiffAttributes {
			if vs, ok := params[a.Key]; ok {
				add("c.FormValue", a.Key, vs[0])
			}
		}
	}
	for _, a := range stepuptest.DiffAttributes {
		if v := c.QueryParam(a.Key); v != "" {
			add("c.QueryParam", a.Key, v)
		}
		if v := c.Param(a.Key); v != "" {
			add("c.Param", a.Key, v)
		}
	}
	reset()
	r.Form, r.PostForm = nil, nil
	return append(seen, stepuptest.NetHTTPReaders(r)...)
}

// FuzzAttributesAgreeWithEcho: whatever the method, Content-Type, query and
// body, either the guard refuses before tracking, or echo's binder and
// accessors (and the net/http readers) get the value the rules judged, or
// nothing. Seeds run with every `go test`; CI fuzzes it for a bounded time.
func FuzzAttributesAgreeWithEcho(f *testing.F) {
	for _, s := range stepuptest.DiffSeeds {
		f.Add(s.Method, s.CT, s.Query, s.Body)
	}
	d := stepuptest.NewDifferential()
	d.Handler = echoApp(f, d, stepuptest.DiffAttributes)
	f.Fuzz(func(t *testing.T, method uint8, contentType, query, body string) {
		d.Check(t, method, "/7", contentType, query, body)
	})
}

// FuzzRetryRunsWhatWasJudgedEcho is the retry mode of the echo
// differential (stepuptest.Differential.CheckRetry): a retry carrying the
// token of a judged request runs, under echo's binder and accessors, on
// what was judged, or not at all.
func FuzzRetryRunsWhatWasJudgedEcho(f *testing.F) {
	for _, s := range stepuptest.RetrySeeds {
		f.Add(s.Method, s.CTA, s.CTB, s.Query, s.Body, s.FeeA, s.FeeB)
	}
	d := stepuptest.NewDifferential()
	d.Handler = echoApp(f, d, stepuptest.RetryAttributes)
	f.Fuzz(func(t *testing.T, method uint8, contentA, contentB, query, body, feeA, feeB string) {
		d.CheckRetry(t, method, "/7", contentA, contentB, query, body, feeA, feeB)
	})
}

// echoApp is the differential's echo application: Require judging attrs.
func echoApp(tb testing.TB, d *stepuptest.Differential, attrs []stepup.Attribute) *echo.Echo {
	g := d.Guard(tb)
	e := echo.New()
	e.Any("/:id", func(c echo.Context) error {
		d.Record(echoReaders(c))
		return nil
	}, stepupecho.Require(g, "transfer", stepup.WithAttributes(attrs...)))
	return e
}
