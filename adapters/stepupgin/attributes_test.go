package stepupgin_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/gin-gonic/gin/binding"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupgin"
	"github.com/stepupkit/stepup/stepuptest"
)

// ginFields is a request struct as a gin handler tags one for c.ShouldBind
// (form, JSON, XML, YAML and TOML bodies by Content-Type, the query for
// GET), c.ShouldBindQuery and c.ShouldBindUri.
type ginFields struct {
	Amount string `form:"amount" json:"amount" xml:"amount" yaml:"amount" toml:"amount" uri:"amount"`
	To     string `form:"to" json:"to" xml:"to" yaml:"to" toml:"to" uri:"to"`
	Desk   string `form:"desk" json:"desk" xml:"desk" yaml:"desk" toml:"desk" uri:"desk"`
	Kind   string `form:"kind" json:"kind" xml:"kind" yaml:"kind" toml:"kind" uri:"kind"`
	OK     string `form:"ok" json:"ok" xml:"ok" yaml:"ok" toml:"ok" uri:"ok"`
	ID     string `form:"id" json:"id" xml:"id" yaml:"id" toml:"id" uri:"id"`
	Payee  struct {
		IBAN string `form:"iban" json:"iban" xml:"iban" yaml:"iban" toml:"iban"`
	} `json:"payee" xml:"payee" yaml:"payee" toml:"payee"`
}

func (f *ginFields) observe(reader string, add func(reader, key string, v any)) {
	for key, v := range map[string]string{"amount": f.Amount, "to": f.To, "desk": f.Desk, "kind": f.Kind,
		"ok": f.OK, "id": f.ID, "payee.iban": f.Payee.IBAN} {
		if v != "" {
			add(reader, key, v)
		}
	}
}

// ginReaders reads every key of stepuptest.DiffAttributes the ways a gin
// handler does: c.ShouldBind and its siblings into tagged structs,
// c.PostForm, c.Query, c.Param, c.PostFormMap, c.QueryMap and
// c.GetRawData, on top of the net/http readers.
func ginReaders(c *gin.Context) []stepuptest.Observation {
	r := c.Request
	body, _ := io.ReadAll(r.Body)
	reset := func() {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.Form, r.PostForm, r.MultipartForm = nil, nil, nil
	}
	var seen []stepuptest.Observation
	add := func(reader, key string, v any) {
		seen = append(seen, stepuptest.Observation{Reader: reader, Key: key, Value: v})
	}

	reset()
	var f ginFields
	if c.ShouldBind(&f) == nil {
		f.observe("c.ShouldBind ("+binding.Default(r.Method, c.ContentType()).Name()+")", add)
	}
	reset()
	var j stepuptest.DiffJSON
	if c.ShouldBindJSON(&j) == nil {
		j.Observe("c.ShouldBindJSON", add)
	}
	reset()
	var jb stepuptest.DiffJSON
	if c.ShouldBindBodyWithJSON(&jb) == nil {
		jb.Observe("c.ShouldBindBodyWithJSON", add)
	}
	reset()
	var form ginFields
	if c.ShouldBindWith(&form, binding.Form) == nil {
		form.observe("c.ShouldBindWith(binding.Form)", add)
	}
	reset()
	var post ginFields
	if c.ShouldBindWith(&post, binding.FormPost) == nil {
		post.observe("c.ShouldBindWith(binding.FormPost)", add)
	}
	var q ginFields
	if c.ShouldBindQuery(&q) == nil {
		q.observe("c.ShouldBindQuery", add)
	}
	var u ginFields
	if c.ShouldBindUri(&u) == nil {
		u.observe("c.ShouldBindUri", add)
	}
	reset()
	for _, a := range stepuptest.DiffAttributes {
		if v, ok := c.GetPostForm(a.Key); ok {
			add("c.PostForm", a.Key, v)
		}
		if v, ok := c.GetQuery(a.Key); ok {
			add("c.Query", a.Key, v)
		}
		if v := c.Param(a.Key); v != "" {
			add("c.Param", a.Key, v)
		}
	}
	if v, ok := c.PostFormMap("payee")["iban"]; ok {
		add("c.PostFormMap", "payee.iban", v)
	}
	if v, ok := c.QueryMap("payee")["iban"]; ok {
		add("c.QueryMap", "payee.iban", v)
	}
	reset()
	raw, _ := c.GetRawData()
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.Form, r.PostForm, r.MultipartForm = nil, nil, nil
	return append(seen, stepuptest.NetHTTPReaders(r)...)
}

// FuzzAttributesAgreeWithGin: whatever the method, Content-Type, query and
// body, either the guard refuses before tracking, or gin's binders and
// accessors (and the net/http readers) get the value the rules judged, or
// nothing. The request goes through the policy table (even method
// numbers) or through Require (odd ones). Seeds run with every `go test`;
// CI fuzzes it for a bounded time.
func FuzzAttributesAgreeWithGin(f *testing.F) {
	for _, s := range stepuptest.DiffSeeds {
		f.Add(s.Method, s.CT, s.Query, s.Body)
	}
	for _, s := range []struct {
		Method          uint8
		CT, Query, Body string
	}{
		{0, "application/x-yaml", "", "kind: a"},
		{0, "application/toml", "", "kind = \"a\""},
		{0, "application/x-yaml", "", `{"kind":"a"}`},
		{0, "text/xml", "", `<x><kind>a</kind></x>`},
		{0, stepuptest.Form, "", "payee[iban]=x"},
		{1, "", "payee[iban]=x", ""},
		{0, " application/json", "", `{"kind":"a"}`},
		{0, "application/json\t", "", `{"kind":"a"}`},
		{2, stepuptest.Form, "", "Amount=5"},
		{0, "multipart/form-data; boundary=x", "", "--x\r\nContent-Disposition: form-data; name=\"amount\"\r\n\r\n5\r\n--x--\r\n"},
	} {
		f.Add(s.Method, s.CT, s.Query, s.Body)
	}
	d := stepuptest.NewDifferential()
	d.Handler = ginApp(f, d, stepuptest.DiffAttributes)
	f.Fuzz(func(t *testing.T, method uint8, contentType, query, body string) {
		d.Check(t, method, ginTarget(method), contentType, query, body)
	})
}

// FuzzRetryRunsWhatWasJudgedGin is the retry mode of the gin differential
// (stepuptest.Differential.CheckRetry): a retry carrying the token of a
// judged request runs, under gin's readers, on what was judged, or not at
// all.
func FuzzRetryRunsWhatWasJudgedGin(f *testing.F) {
	for _, s := range stepuptest.RetrySeeds {
		f.Add(s.Method, s.CTA, s.CTB, s.Query, s.Body, s.FeeA, s.FeeB)
	}
	d := stepuptest.NewDifferential()
	d.Handler = ginApp(f, d, stepuptest.RetryAttributes)
	f.Fuzz(func(t *testing.T, method uint8, contentA, contentB, query, body, feeA, feeB string) {
		d.CheckRetry(t, method, ginTarget(method), contentA, contentB, query, body, feeA, feeB)
	})
}

// ginApp is the differential's gin application, judging attrs: the policy
// table under /t/:id, Require under /r/:id.
func ginApp(tb testing.TB, d *stepuptest.Differential, attrs []stepup.Attribute) http.Handler {
	var policies []stepup.Policy
	for _, m := range stepuptest.DiffMethods {
		policies = append(policies, stepup.Policy{Method: m, Route: "/t/:id", Action: "transfer", Attributes: attrs})
	}
	g := d.Guard(tb, policies...)
	gin.SetMode(gin.TestMode)
	record := func(c *gin.Context) { d.Record(ginReaders(c)) }
	e := gin.New()
	e.Use(stepupgin.Middleware(g, e))
	e.Any("/t/:id", record)
	e.Any("/r/:id", stepupgin.Require(g, "transfer", stepup.WithAttributes(attrs...)), record)
	return e
}

// ginTarget sends even method numbers through the table, odd ones
// through Require.
func ginTarget(method uint8) string {
	if method%2 == 1 {
		return "/r/7"
	}
	return "/t/7"
}
