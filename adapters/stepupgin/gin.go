package stepupgin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/gin-gonic/gin"
	"github.com/gin-gonic/gin/binding"

	"github.com/stepupkit/stepup"
)

// Middleware protects the routes of the guard's policy table, matched on
// c.FullPath(), gin's pattern for the route it matched ("/items/:id").
// Register it with engine.Use (or a group's Use) after authentication and
// CSRF, and before the routes: gin gives a route the middleware registered
// before it, so a route registered earlier runs without the guard. e is the
// engine that serves the routes; the middleware reads its route table to
// tell a method changed after routing.
//
// gin routes before any middleware runs, so the pattern is always the
// route's. While the table is not empty, a request whose method no policy
// covers at a pattern that a policy protects for another method is checked:
// if gin has no route of that method at the pattern running the handler
// the request is about to run, a middleware changed the method after
// routing, and the request is refused with a 500 wrapping
// stepup.ErrMisconfigured instead of running a protected handler
// undecided. A protected request gets the same check, so that a method
// changed into another protected one is not judged by that one's policy.
// Change methods before gin routes: wrap the engine.
//
// gin's path parameters (c.Params) are set on the request (r.PathValue)
// for FromPath attributes. On a protected route whose policy reads
// attributes, a body that gin's binders read and the guard cannot (YAML,
// TOML, MessagePack, BSON, Protocol Buffers) is refused with 415 before
// anything is tracked.
//
// Refusals and challenges are written by the guard (Config.ErrorHandler,
// else its JSON or HTML answer) and the gin chain is aborted.
func Middleware(g *stepup.Guard, e *gin.Engine) gin.HandlerFunc {
	t := &table{g: g, e: e, covered: map[string]bool{}}
	for _, p := range g.Policies() {
		t.covered[p.Route] = true
	}
	return t.serve
}

// table is the policy-table middleware.
type table struct {
	g *stepup.Guard
	e *gin.Engine
	// covered holds the patterns some policy protects, for some method: a
	// request at any other pattern passes after one map lookup.
	covered map[string]bool
	// routes caches the identity of each route's handler by method and
	// pattern. gin never removes or replaces a route, so an entry never
	// goes stale.
	routes sync.Map
}

func (t *table) serve(c *gin.Context) {
	if len(t.covered) == 0 {
		return
	}
	pattern := c.FullPath()
	if !t.covered[pattern] {
		return
	}
	method := c.Request.Method
	rule, ok := t.g.Match(method, pattern)
	if !ok {
		if reason := t.methodChanged(c, method, pattern); reason != "" {
			abort(c, t.g, t.g.Misconfigured(c.Request, reason))
		}
		return
	}
	if t.e != nil {
		// The method may have been changed after routing into another
		// protected one, whose policy would then judge this handler.
		if reason := t.methodChanged(c, method, pattern); reason != "" {
			abort(c, t.g, t.g.Misconfigured(c.Request, reason))
			return
		}
	}
	p := rule.Policy()
	if e := unreadable(c, p); e != nil {
		abort(c, t.g, e)
		return
	}
	if e := bracketKeys(c, t.g, p); e != nil {
		abort(c, t.g, e)
		return
	}
	r := withParams(c)
	r.Pattern = method + " " + pattern
	serve(c, r, t.g.Middleware)
}

// methodChanged says why the handler about to run cannot be the one gin
// routed this request's method to, or returns "" when it is.
func (t *table) methodChanged(c *gin.Context, method, pattern string) string {
	if t.e == nil {
		return fmt.Sprintf("stepupgin.Middleware has no engine to check %s %s against, at a pattern policies protect for other methods: "+
			"pass the *gin.Engine to stepupgin.Middleware", method, pattern)
	}
	want, ok := t.handler(method, pattern)
	if ok && want == funcID(c.Handler()) {
		return ""
	}
	return fmt.Sprintf("gin does not route %s to the handler of %s (%s), which policies protect for other methods: "+
		"the method changed after routing; change it before gin routes (wrap the engine), not in a gin middleware",
		method, pattern, c.HandlerName())
}

// handler returns the identity of the handler gin runs for method at
// pattern.
func (t *table) handler(method, pattern string) (uintptr, bool) {
	k := [2]string{method, pattern}
	if id, ok := t.routes.Load(k); ok {
		return id.(uintptr), true
	}
	for _, rt := range t.e.Routes() {
		t.routes.Store([2]string{rt.Method, rt.Path}, funcID(rt.HandlerFunc))
	}
	id, ok := t.routes.Load(k)
	if !ok {
		return 0, false
	}
	return id.(uintptr), true
}

// serve runs the guard's net/http middleware, built by wrap around the rest
// of the gin chain, for r; when the guard answered instead (a challenge or
// a refusal) the chain is aborted.
func serve(c *gin.Context, r *http.Request, wrap func(http.Handler) http.Handler) {
	ran := false
	wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ran = true
		r.Pattern = ""
		c.Request = r
		c.Next()
	})).ServeHTTP(c.Writer, r)
	if !ran {
		c.Abort()
	}
}

// withParams returns a copy of c's request with gin's path parameters as
// path values.
func withParams(c *gin.Context) *http.Request {
	r := c.Request.WithContext(c.Request.Context())
	for _, p := range c.Params {
		r.SetPathValue(p.Key, p.Value)
	}
	return r
}

// ginOnly are the body types gin's binders read (c.ShouldBind picks them
// by Content-Type) that the guard does not.
var ginOnly = map[string]bool{
	binding.MIMEYAML: true, binding.MIMEYAML2: true, binding.MIMETOML: true,
	binding.MIMEMSGPACK: true, binding.MIMEMSGPACK2: true, binding.MIMEBSON: true, binding.MIMEPROTOBUF: true,
}

// unreadable refuses a body that gin would bind and the guard cannot read,
// when p reads attributes from the request.
func unreadable(c *gin.Context, p stepup.Policy) *stepup.Error {
	r := c.Request
	if len(p.Attributes) == 0 && p.Custom == nil || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	ct := c.ContentType()
	if !ginOnly[ct] {
		return nil
	}
	return &stepup.Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_body",
		Message: "This kind of request body cannot be checked here. Send it as a form or as JSON.",
		Err:     fmt.Errorf("%w: gin binds %s bodies, which the guard cannot read", stepup.ErrUnsupportedBody, ct)}
}

// bracketKeys refuses a request whose query or form body holds a key that
// gin's map readers (c.QueryMap, c.PostFormMap, a map field bound from a
// form) would turn into a value of one of p's dotted attribute keys:
// "payee[iban]=x" is c.PostFormMap("payee")["iban"], which the guard does
// not judge as "payee.iban". The form is parsed as gin parses it
// (net/http's ParseForm), through the guard's PreserveBody so that the
// guard still parks the exact body.
func bracketKeys(c *gin.Context, g *stepup.Guard, p stepup.Policy) *stepup.Error {
	var dotted []string
	for _, a := range p.Attributes {
		if strings.Contains(a.Key, ".") {
			dotted = append(dotted, a.Key)
		}
	}
	if len(dotted) == 0 {
		return nil
	}
	g.PreserveBody(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { c.Request = r })).ServeHTTP(c.Writer, c.Request)
	_ = c.Request.ParseForm() // malformed input is the guard's to refuse
	for k := range c.Request.Form {
		i := strings.IndexByte(k, '[')
		if i < 1 {
			continue
		}
		j := strings.IndexByte(k[i+1:], ']')
		if j < 1 {
			continue
		}
		alias := k[:i] + "." + k[i+1:i+1+j]
		for _, key := range dotted {
			if strings.EqualFold(alias, key) {
				return &stepup.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "This request could not be checked.",
					Err: fmt.Errorf("%w: attributes: %q names %q as gin's map readers see it, which the guard does not read",
						stepup.ErrBadRequest, k, key)}
			}
		}
	}
	return nil
}

// abort answers a refusal the adapter made itself, records it in c.Errors
// and stops the chain.
func abort(c *gin.Context, g *stepup.Guard, e *stepup.Error) {
	_ = c.Error(e)
	c.Abort()
	g.WriteError(c.Writer, c.Request, e)
}

// Require protects one route with action, whatever the table says:
// engine.POST("/transfer", stepupgin.Require(guard, "transfer"), transfer).
// It panics on an invalid action code, as route registration does.
func Require(g *stepup.Guard, action string, opts ...stepup.RequireOption) gin.HandlerFunc {
	wrap := g.Require(action, opts...)
	var p stepup.Policy
	for _, o := range opts {
		o(&p)
	}
	return func(c *gin.Context) {
		if e := unreadable(c, p); e != nil {
			abort(c, g, e)
			return
		}
		if e := bracketKeys(c, g, p); e != nil {
			abort(c, g, e)
			return
		}
		serve(c, withParams(c), wrap)
	}
}

// Callback serves the guard's callback route and replays parked requests
// through e, the whole gin engine again (its middleware included):
//
//	engine.GET("/stepup/callback", stepupgin.Callback(guard, engine))
func Callback(g *stepup.Guard, e *gin.Engine) gin.HandlerFunc {
	h := g.Callback(e)
	return func(c *gin.Context) {
		h.ServeHTTP(c.Writer, c.Request)
	}
}

// PreserveBody keeps the exact body of every request for the guard, so
// middleware that reads bodies (a CSRF check reading c.PostForm) may run
// first. Register it first, with engine.Use, or wrap the engine with
// guard.PreserveBody.
func PreserveBody(g *stepup.Guard) gin.HandlerFunc {
	return func(c *gin.Context) {
		g.PreserveBody(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			c.Request = r
			c.Next()
		})).ServeHTTP(c.Writer, c.Request)
	}
}

// CheckRoutes reports the wiring mistakes it can see in e's routes, so
// that none leaves a route open. Call it after registering the routes.
//
//   - A policy that names no route of e: a typo protects nothing.
//   - A handler that a policy protects for some methods but that is also
//     registered for methods no policy covers, as engine.Any and
//     engine.Match do: a GET-only policy on engine.Any("/admin", h) lets
//     POST /admin run h without a step-up. Use Method "*" in the policy.
//     "The same handler" is the same registered function value.
//
// It cannot see a route registered before Middleware was added with Use:
// gin runs no guard for it. Register Middleware first.
func CheckRoutes(g *stepup.Guard, e *gin.Engine) error {
	type handlerAt struct {
		path string
		id   uintptr
	}
	have := map[[2]string]bool{}
	methods := map[handlerAt][]string{}
	var order []handlerAt
	for _, rt := range e.Routes() {
		have[[2]string{rt.Method, rt.Path}] = true
		have[[2]string{"*", rt.Path}] = true
		k := handlerAt{rt.Path, funcID(rt.HandlerFunc)}
		if _, seen := methods[k]; !seen {
			order = append(order, k)
		}
		methods[k] = append(methods[k], rt.Method)
	}
	var errs []error
	for _, p := range g.Policies() {
		if !have[[2]string{p.Method, p.Route}] {
			errs = append(errs, fmt.Errorf("stepupgin: policy %s %s: no such gin route", p.Method, p.Route))
		}
	}
	slices.SortStableFunc(order, func(a, b handlerAt) int { return strings.Compare(a.path, b.path) })
	for _, k := range order {
		protected, open := g.SplitMethods(k.path, methods[k])
		if len(protected) > 0 && len(open) > 0 {
			errs = append(errs, fmt.Errorf("stepupgin: route %s: one handler is protected for %s but registered for %s too, "+
				"which no policy covers (engine.Any or engine.Match?): use Method \"*\" in the policy or add policies for those methods",
				k.path, strings.Join(protected, ", "), strings.Join(open, ", ")))
		}
	}
	return errors.Join(errs...)
}

// funcID is a function value's identity: its closure's address. A handler
// registered for several methods (engine.Any) has the same identity under
// each; two closures made by one factory do not.
func funcID(f gin.HandlerFunc) uintptr {
	return *(*uintptr)(unsafe.Pointer(&f))
}
