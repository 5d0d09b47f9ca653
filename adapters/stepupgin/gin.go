package stepupgin

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/gin-gonic/gin"
	"github.com/gin-gonic/gin/binding"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/internal/handlerid"
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

// Use registers Middleware on e, e.Use(stepupgin.Middleware(g, e)), in
// the form that cannot come too late: gin gives a route only the
// middleware registered before it, so Use refuses, registering nothing,
// when e already has a route that a policy protects, which gin would run
// without the guard. Call it after authentication and CSRF middleware and
// before the routes:
//
//	engine := gin.New()
//	engine.Use(gin.Recovery(), auth)
//	if err := stepupgin.Use(guard, engine); err != nil { … }
//	engine.POST("/transfer", transfer)
func Use(g *stepup.Guard, e *gin.Engine) error {
	var early []string
	for _, rt := range e.Routes() {
		if _, ok := g.Match(rt.Method, rt.Path); ok {
			early = append(early, rt.Method+" "+rt.Path)
		}
	}
	if len(early) > 0 {
		return fmt.Errorf("stepupgin: Use: %s registered before the guard's middleware, which gin would not run for them: "+
			"call stepupgin.Use before registering the routes", strings.Join(early, ", "))
	}
	e.Use(Middleware(g, e))
	return nil
}

// middlewareCode is the code of table.serve as a function value, the
// handler Middleware returns: CheckRoutes finds it in a route's chain.
var middlewareCode = handlerid.Code((*table)(nil).serve)

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
	q := &requirer{g: g, wrap: g.Require(action, opts...)}
	for _, o := range opts {
		o(&q.p)
	}
	return q.serve
}

// requirer is Require's middleware; CheckRoutes finds it in a route's
// chain by the code of its serve method.
type requirer struct {
	g    *stepup.Guard
	wrap func(http.Handler) http.Handler
	p    stepup.Policy
}

func (q *requirer) serve(c *gin.Context) {
	if e := unreadable(c, q.p); e != nil {
		abort(c, q.g, e)
		return
	}
	if e := bracketKeys(c, q.g, q.p); e != nil {
		abort(c, q.g, e)
		return
	}
	serve(c, withParams(c), q.wrap)
}

var requireCode = handlerid.Code((*requirer)(nil).serve)

// Callback serves the guard's callback route and replays parked requests
// through e, the whole gin engine again (its middleware included):
//
//	engine.GET("/stepup/callback", stepupgin.Callback(guard, engine))
func Callback(g *stepup.Guard, e *gin.Engine) gin.HandlerFunc {
	return (&callback{g.Callback(e)}).serve
}

// callback is the handler Callback returns; CheckRoutes recognises it by
// the code of its serve method.
type callback struct{ h http.Handler }

func (cb *callback) serve(c *gin.Context) { cb.h.ServeHTTP(c.Writer, c.Request) }

var callbackCode = handlerid.Code((*callback)(nil).serve)

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
// that none leaves a route open or a parked request lost. Call it after
// registering the routes.
//
//   - A policy that names no route of e: a typo protects nothing.
//   - A route that a policy protects but whose handler chain has neither
//     Middleware nor Require: registered before Middleware was added with
//     Use (gin gives a route only the middleware registered before it), or
//     in a group without it. Use stepupgin.Use, before the routes.
//   - A handler that a policy protects for some methods but that is also
//     registered for methods no policy covers, as engine.Any and
//     engine.Match do: a GET-only policy on engine.Any("/admin", h) lets
//     POST /admin run h without a step-up. Use Method "*" in the policy.
//   - A handler protected under one route (by a policy with Middleware in
//     its chain, or by Require in its chain) and registered under another
//     where nothing protects it: the alias runs it without a step-up.
//     Register it under the protected route only or, to serve it under
//     several, put Require in each of its routes' chains.
//   - The path of Config.CallbackURL without a GET route to Callback: the
//     user would pass the challenge, land on a 404, and the parked request
//     would be lost.
//
// "The same handler" is the same registered function value: one function,
// one closure value, or one method value of one receiver (h.Transfer,
// however often it is written). A closure made anew for each registration
// is a handler of its own and is not reported. Handlers shared only by
// routes nothing protects (a 404, a file server) are fine.
//
// gin lists a route's last handler only; CheckRoutes reads each route's
// handler chain from gin's route tree. Should a gin release lay it out
// otherwise, the checks that need the chain (Middleware or Require in it)
// are skipped, and every other check still runs.
func CheckRoutes(g *stepup.Guard, e *gin.Engine) error {
	type handlerAt struct {
		path string
		id   handlerid.ID
	}
	routes, chainsKnown := routesOf(e)
	have := map[[2]string]bool{}
	methods := map[handlerAt][]string{}
	guarded := map[[2]string]string{} // "table" or "require", by method and path
	var order []handlerAt
	var errs []error
	for _, rt := range routes {
		have[[2]string{rt.method, rt.path}] = true
		have[[2]string{"*", rt.path}] = true
		k := handlerAt{rt.path, handlerid.Of(rt.chain.Last())}
		if _, seen := methods[k]; !seen {
			order = append(order, k)
		}
		methods[k] = append(methods[k], rt.method)
		for _, h := range rt.chain {
			switch handlerid.Code(h) {
			case middlewareCode:
				if guarded[[2]string{rt.method, rt.path}] == "" {
					guarded[[2]string{rt.method, rt.path}] = "table"
				}
			case requireCode:
				guarded[[2]string{rt.method, rt.path}] = "require"
			}
		}
		if _, ok := g.Match(rt.method, rt.path); ok && chainsKnown && guarded[[2]string{rt.method, rt.path}] == "" {
			errs = append(errs, fmt.Errorf("stepupgin: route %s %s: a policy protects it, but neither stepupgin.Middleware nor "+
				"stepupgin.Require is in its handler chain (registered before engine.Use(stepupgin.Middleware(…)), or in a group "+
				"without it), so gin runs it without a step-up: add the guard with stepupgin.Use(guard, engine) before the routes",
				rt.method, rt.path))
		}
	}
	for _, p := range g.Policies() {
		if !have[[2]string{p.Method, p.Route}] {
			errs = append(errs, fmt.Errorf("stepupgin: policy %s %s: no such gin route", p.Method, p.Route))
		}
	}
	slices.SortStableFunc(order, func(a, b handlerAt) int { return strings.Compare(a.path, b.path) })
	type uses struct {
		handler         gin.HandlerFunc
		protected, open []string
	}
	byHandler := map[handlerid.ID]*uses{}
	var handlerOrder []handlerid.ID
	last := map[[2]string]gin.HandlerFunc{}
	for _, rt := range routes {
		last[[2]string{rt.method, rt.path}] = rt.chain.Last()
	}
	for _, k := range order {
		protected, open := g.SplitMethods(k.path, methods[k])
		if len(protected) > 0 && len(open) > 0 {
			errs = append(errs, fmt.Errorf("stepupgin: route %s: one handler is protected for %s but registered for %s too, "+
				"which no policy covers (engine.Any or engine.Match?): use Method \"*\" in the policy or add policies for those methods",
				k.path, strings.Join(protected, ", "), strings.Join(open, ", ")))
		}
		u := byHandler[k.id]
		if u == nil {
			u = &uses{handler: last[[2]string{methods[k][0], k.path}]}
			byHandler[k.id] = u
			handlerOrder = append(handlerOrder, k.id)
		}
		var prot, opn []string
		for _, m := range methods[k] {
			_, byTable := g.Match(m, k.path)
			switch how := guarded[[2]string{m, k.path}]; {
			case how == "require", byTable && (how == "table" || !chainsKnown):
				prot = append(prot, m+" "+k.path)
			default:
				opn = append(opn, m+" "+k.path)
			}
		}
		u.protected = append(u.protected, prot...)
		if len(prot) == 0 { // both at one route: reported above
			u.open = append(u.open, opn...)
		}
	}
	for _, id := range handlerOrder {
		if u := byHandler[id]; len(u.protected) > 0 && len(u.open) > 0 {
			errs = append(errs, handlerid.AliasError("stepupgin", handlerid.Name(u.handler), u.protected, u.open,
				"put stepupgin.Require(guard, action) in the handler chain of each of its routes"))
		}
	}
	if err := checkCallback(g, routes); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkCallback reports when no GET route of e at the path of
// Config.CallbackURL ends in Callback.
func checkCallback(g *stepup.Guard, routes []route) error {
	u := g.CallbackURL()
	for _, rt := range routes {
		if rt.method != http.MethodGet || rt.path != u.Path {
			continue
		}
		if h := rt.chain.Last(); handlerid.Code(h) != callbackCode {
			return fmt.Errorf("stepupgin: Config.CallbackURL %s: its GET route's handler is %s, not stepupgin.Callback(guard, engine)",
				u, handlerid.Name(h))
		}
		return nil
	}
	return fmt.Errorf("stepupgin: Config.CallbackURL %s: its path names no GET route: mount the callback there, "+
		"engine.GET(%q, stepupgin.Callback(guard, engine)), or the user passes the challenge and the parked request is lost",
		u, u.Path)
}

// route is one of gin's routes with its whole handler chain (nil when it
// could not be read).
type route struct {
	method, path string
	chain        gin.HandlersChain
}

// routesOf lists e's routes with their handler chains, read from gin's
// route tree, which gin does not export; when its layout is not the one
// known here, the routes come from e.Routes() with their last handler
// only, and ok is false.
func routesOf(e *gin.Engine) (routes []route, ok bool) {
	listed := e.Routes()
	if walked, err := walkTrees(e); err == nil && len(walked) == len(listed) {
		return walked, true
	}
	for _, rt := range listed {
		routes = append(routes, route{method: rt.Method, path: rt.Path, chain: gin.HandlersChain{rt.HandlerFunc}})
	}
	return routes, false
}

var chainType = reflect.TypeOf(gin.HandlersChain(nil))

// walkTrees reads gin's route tree (engine.trees, each methodTree's root
// node, each node's path, handlers and children) as gin's own Routes does.
func walkTrees(e *gin.Engine) (routes []route, err error) {
	defer func() {
		if recover() != nil {
			routes, err = nil, errors.New("unknown layout")
		}
	}()
	trees := reflect.ValueOf(e).Elem().FieldByName("trees")
	if trees.Kind() != reflect.Slice {
		return nil, errors.New("unknown layout")
	}
	var walk func(n reflect.Value, method, path string) error
	walk = func(n reflect.Value, method, path string) error {
		if n.Kind() != reflect.Pointer || n.IsNil() {
			return errors.New("unknown layout")
		}
		n = n.Elem()
		path += n.FieldByName("path").String()
		h := n.FieldByName("handlers")
		if h.Type() != chainType {
			return errors.New("unknown layout")
		}
		if h.Len() > 0 {
			chain := *(*gin.HandlersChain)(unsafe.Pointer(h.UnsafeAddr()))
			routes = append(routes, route{method: method, path: path, chain: slices.Clone(chain)})
		}
		children := n.FieldByName("children")
		for i := range children.Len() {
			if err := walk(children.Index(i), method, path); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range trees.Len() {
		t := trees.Index(i)
		if err := walk(t.FieldByName("root"), t.FieldByName("method").String(), ""); err != nil {
			return nil, err
		}
	}
	return routes, nil
}

// funcID is a function value's identity: its closure's address. A handler
// registered for several methods (engine.Any) has the same identity under
// each; two closures made by one factory do not.
func funcID(f gin.HandlerFunc) uintptr {
	return *(*uintptr)(unsafe.Pointer(&f))
}
