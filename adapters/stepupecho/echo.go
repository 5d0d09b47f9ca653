// Package stepupecho puts a stepup.Guard in front of echo v4 routes.
//
// It is a thin translation into the net/http core: the same pipeline, the
// same Store and session, the same errors. Decisions use echo's own route
// match, c.Path(), never a second parse of the request path.
//
//	e.Pre(stepupecho.PreserveBody(guard))   // keep exact bodies past body-reading middleware
//	e.Use(middleware.CSRF())                // CSRF first: a cross-site POST is never parked
//	e.Use(stepupecho.Middleware(guard))     // the policy table, by c.Path()
//	e.POST("/transfer", h, stepupecho.Require(guard, "transfer"))
//	e.GET("/stepup/callback", stepupecho.Callback(guard, e))
//	if err := stepupecho.CheckRoutes(guard, e); err != nil { … }
//
// Middleware belongs in e.Use, after routing, and a method override such as
// middleware.MethodOverride in e.Pre, before it. Wired otherwise the guard
// cannot trust c.Path() or the method, and refuses with a 500 wrapping
// stepup.ErrMisconfigured where it can tell; see Middleware.
package stepupecho

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/internal/handlerid"
)

// Config configures the echo middleware.
type Config struct {
	// Skipper skips the guard for a request. Optional. Default: never.
	Skipper middleware.Skipper
	// BeforeFunc runs before the guard decides. Optional.
	BeforeFunc middleware.BeforeFunc
	// ErrorHandler receives every refusal as an *echo.HTTPError whose
	// Internal is the *stepup.Error. Optional. Default: the guard answers
	// it as it answers its own (stepup.Config.ErrorHandler, else a page
	// for a browser and JSON for an API client, as net/http and the
	// callback do) and echo's HTTPErrorHandler is not called.
	ErrorHandler func(c echo.Context, err error) error
}

// Middleware protects the routes of the guard's policy table, matched on
// c.Path(). Register it with e.Use, after CSRF and authentication.
//
// While the table is not empty, two wiring mistakes are refused with a 500
// (stepup.ErrMisconfigured) rather than let through undecided: the
// middleware registered with e.Pre, where no route is matched yet, and a
// method changed after routing (middleware.MethodOverride registered with
// e.Use, or any middleware there that rewrites the method), seen when no
// policy covers the request's method at the matched pattern, a policy
// protects that pattern for another method, and echo would not route the
// request's method to it. echo's own 404, 405 and OPTIONS answers pass.
//
// What it cannot see is an override after routing into a method that has
// its own route at the same pattern (POST /x protected, DELETE /x open):
// the POST handler then runs undecided. Register overrides with e.Pre, or
// protect such a route with Require, which runs with the route's own
// handler.
func Middleware(g *stepup.Guard) echo.MiddlewareFunc {
	return MiddlewareWithConfig(g, Config{})
}

// MiddlewareWithConfig is Middleware with options.
func MiddlewareWithConfig(g *stepup.Guard, cfg Config) echo.MiddlewareFunc {
	t := &table{g: g, cfg: withDefaults(cfg), covered: map[string]bool{}}
	for _, p := range g.Policies() {
		t.covered[p.Route] = true
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { return t.serve(c, next) }
	}
}

// table is the policy-table middleware. echo builds the middleware chain
// per request, so the closure holds only a pointer to it.
type table struct {
	g   *stepup.Guard
	cfg Config
	// covered holds the patterns some policy protects, for some method. A
	// request at any other pattern passes after one map lookup; one at a
	// protected pattern that no policy covers for its method is checked
	// for a method changed after routing.
	covered map[string]bool
}

func (t *table) serve(c echo.Context, next echo.HandlerFunc) error {
	if t.cfg.Skipper(c) {
		return next(c)
	}
	path := c.Path()
	if !t.covered[path] {
		if path == "" && len(t.covered) > 0 {
			if reason := miswired(c, t.g); reason != "" {
				return refusal(c, t.g, t.cfg, t.g.Misconfigured(c.Request(), reason))
			}
		}
		return next(c)
	}
	if rule, ok := t.g.Match(c.Request().Method, path); ok {
		return enforce(c, t.g, rule, next, t.cfg)
	}
	if reason := miswired(c, t.g); reason != "" {
		return refusal(c, t.g, t.cfg, t.g.Misconfigured(c.Request(), reason))
	}
	return next(c)
}

// miswired says why the route echo matched cannot be trusted for this
// request, or returns "" when it can. It runs only for requests that no
// policy covers and whose pattern is empty or protected for another
// method, and reads echo's route table only in the rarest of those cases.
func miswired(c echo.Context, g *stepup.Guard) string {
	r := c.Request()
	path, method := c.Path(), r.Method
	if path == "" {
		// Before routing (e.Pre) and after a miss (404) the pattern is
		// empty alike; only a miss still matches nothing when routed.
		matched, _ := route(c)
		if matched == "" {
			return ""
		}
		return fmt.Sprintf("stepupecho.Middleware ran before routing (c.Path() is empty, yet echo routes %s %s to %s): "+
			"register it with e.Use, not e.Pre", method, r.URL.Path, matched)
	}
	if c.Get(echo.ContextKeyHeaderAllow) != nil {
		return "" // the router answers 405 or OPTIONS itself: no route handler runs
	}
	if matched, allowed := route(c); matched != path || allowed {
		return fmt.Sprintf("echo routes %s to %q, not to %s, which it matched and which policies protect for other methods: "+
			"the method changed after routing; register middleware.MethodOverride (or whatever rewrites the method) with e.Pre, not e.Use",
			method, matched, path)
	}
	// This method routes to this pattern: to a route of its own, or to the
	// pattern's RouteNotFound handler (echo registers one at every group
	// with middleware). Only echo's MethodOverride turning a protected POST
	// into this method after routing makes the difference matter.
	if _, post := g.Match(http.MethodPost, path); !post || !overrideTarget(method) || hasRoute(c, method, path) {
		return ""
	}
	return fmt.Sprintf("echo has no %s route at %s, only a RouteNotFound handler, and a policy protects POST there: "+
		"a POST overridden after routing looks the same; register middleware.MethodOverride with e.Pre, not e.Use, "+
		"or the RouteNotFound handler on another pattern", method, path)
}

// route routes the request again on a pooled context, as echo routed it
// (or will), and returns the pattern matched and whether echo answers 405
// or OPTIONS itself.
func route(c echo.Context) (path string, allowed bool) {
	e, r := c.Echo(), c.Request()
	probe := e.AcquireContext()
	probe.Reset(r, nil)
	hostRouter(e, r.Host).Find(r.Method, echo.GetPath(r), probe)
	path, allowed = probe.Path(), probe.Get(echo.ContextKeyHeaderAllow) != nil
	e.ReleaseContext(probe)
	return path, allowed
}

// hasRoute reports whether echo has a route for method at path, for the
// request's host.
func hasRoute(c echo.Context, method, path string) bool {
	for _, rt := range hostRouter(c.Echo(), c.Request().Host).Routes() {
		if rt.Method == method && rt.Path == path {
			return true
		}
	}
	return false
}

// hostRouter is echo's choice of router for host.
func hostRouter(e *echo.Echo, host string) *echo.Router {
	if hr, ok := e.Routers()[host]; ok {
		return hr
	}
	return e.Router()
}

// overrideTarget reports whether echo's MethodOverride can turn a POST
// into method: it refuses GET, HEAD, OPTIONS, TRACE and CONNECT.
func overrideTarget(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodConnect, http.MethodPost:
		return false
	}
	return true
}

// Require protects one route with action, whatever the table says. It
// panics on an invalid action code, as route registration does.
func Require(g *stepup.Guard, action string, opts ...stepup.RequireOption) echo.MiddlewareFunc {
	return RequireWithConfig(g, Config{}, action, opts...)
}

// RequireWithConfig is Require with options.
func RequireWithConfig(g *stepup.Guard, cfg Config, action string, opts ...stepup.RequireOption) echo.MiddlewareFunc {
	cfg = withDefaults(cfg)
	rule, err := g.NewRule(action, opts...)
	if err != nil {
		panic(err)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return (&required{g: g, rule: rule, next: next, cfg: cfg}).serve
	}
}

// required is a handler Require protects. Its serve method gives every
// such handler one route name, which CheckRoutes counts as protected
// wherever it is mounted.
type required struct {
	g    *stepup.Guard
	rule stepup.Rule
	next echo.HandlerFunc
	cfg  Config
}

func (q *required) serve(c echo.Context) error {
	if q.cfg.Skipper(c) {
		return q.next(c)
	}
	return enforce(c, q.g, q.rule, q.next, q.cfg)
}

// Callback serves the guard's callback route and replays parked requests
// through e, the whole echo stack again (CSRF included).
func Callback(g *stepup.Guard, e *echo.Echo) echo.HandlerFunc {
	return (&callback{g.Callback(e)}).serve
}

// callback is the handler Callback returns. Its serve method gives the
// route a name, echo's name for the handler, by which CheckRoutes
// recognises it.
type callback struct{ h http.Handler }

func (cb *callback) serve(c echo.Context) error {
	cb.h.ServeHTTP(c.Response(), c.Request())
	return nil
}

// Route names echo gives the handlers of Callback and of Require.
var (
	callbackName = handlerid.Name((*callback)(nil).serve)
	requiredName = handlerid.Name((*required)(nil).serve)
)

// PreserveBody keeps the exact body of every request for the guard, so
// middleware that reads bodies (CSRF reading a form field) may run first.
// Register it with e.Pre.
func PreserveBody(g *stepup.Guard) echo.MiddlewareFunc {
	return echo.WrapMiddleware(g.PreserveBody)
}

// CheckRoutes reports the wiring mistakes it can see in e's routes, so
// that none leaves a route open or a parked request lost. Call it after
// registering the routes.
//
//   - A policy that names no route of e: a typo protects nothing.
//   - A handler that a policy protects for some methods but that is also
//     registered, under the same route name, for methods no policy covers,
//     as e.Any and e.Match do: a GET-only policy on e.Any("/admin", h) lets
//     POST /admin run h without a step-up. Use Method "*" in the policy.
//   - A handler protected under one route and registered under another
//     that no policy protects (an echo handler in two groups, "/api" and
//     "/api/v1"): the alias runs it without a step-up. Register it under
//     the protected route only or, to serve it under several, wrap the
//     handler itself, stepupecho.Require(guard, action)(handler), which
//     protects it wherever it is mounted (Require as route middleware
//     protects that route only, and CheckRoutes cannot see it).
//   - The path of Config.CallbackURL not routed (GET) to Callback: the
//     user would pass the challenge, land on a 404, and the parked request
//     would be lost.
//
// echo keeps a route's name, not its handler, so "the same handler" is the
// same route name, which echo takes from the handler function: one
// function or method (h.Transfer: for every receiver), or one closure
// literal. Two different handlers made by one factory share a name; give
// such a route a Name of its own (route.Name = "…") to tell them apart.
// Handlers made by echo.WrapHandler all share one name and are not
// compared across routes. Keep the name echo gives the Callback route.
func CheckRoutes(g *stepup.Guard, e *echo.Echo) error {
	routers := [][]*echo.Route{e.Routes()}
	hosts := []string{""}
	for host, r := range e.Routers() {
		routers = append(routers, r.Routes())
		hosts = append(hosts, host)
	}
	have := map[[2]string]bool{}
	for _, routes := range routers {
		for _, r := range routes {
			have[[2]string{r.Method, r.Path}] = true
			have[[2]string{"*", r.Path}] = true
		}
	}
	var errs []error
	for _, p := range g.Policies() {
		if !have[[2]string{p.Method, p.Route}] {
			errs = append(errs, fmt.Errorf("stepupecho: policy %s %s: no such echo route", p.Method, p.Route))
		}
	}
	for _, routes := range routers {
		errs = append(errs, sharedHandlers(g, routes)...)
	}
	errs = append(errs, aliases(g, routers, hosts))
	errs = append(errs, checkCallback(g, e))
	return errors.Join(errs...)
}

// sharedHandlers reports the handlers of one router that are protected
// for some methods of a pattern and open for others.
func sharedHandlers(g *stepup.Guard, routes []*echo.Route) []error {
	type handlerAt struct{ path, name string }
	methods := map[handlerAt][]string{}
	for _, r := range routes {
		if r.Method != echo.RouteNotFound {
			k := handlerAt{r.Path, r.Name}
			methods[k] = append(methods[k], r.Method)
		}
	}
	keys := make([]handlerAt, 0, len(methods))
	for k := range methods {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b handlerAt) int { return strings.Compare(a.path+" "+a.name, b.path+" "+b.name) })
	var errs []error
	for _, k := range keys {
		protected, open := g.SplitMethods(k.path, methods[k])
		if len(protected) > 0 && len(open) > 0 {
			errs = append(errs, fmt.Errorf("stepupecho: route %s: handler %s is protected for %s but registered for %s too, "+
				"which no policy covers (e.Any or e.Match?): use Method \"*\" in the policy or add policies for those methods; "+
				"if these are different handlers, give each route its own Name",
				k.path, k.name, strings.Join(protected, ", "), strings.Join(open, ", ")))
		}
	}
	return errs
}

// aliases reports the handlers (by route name) that a policy protects under
// some route and that are registered under another route, of any of e's
// routers, where no policy protects them.
func aliases(g *stepup.Guard, routers [][]*echo.Route, hosts []string) error {
	type uses struct{ protected, open []string }
	byName := map[string]*uses{}
	var names []string
	for i, routes := range routers {
		type at struct{ name, path string }
		methods := map[at][]string{}
		var order []at
		for _, r := range routes {
			if r.Method == echo.RouteNotFound || !comparable(r.Name) {
				continue
			}
			k := at{r.Name, r.Path}
			if _, seen := methods[k]; !seen {
				order = append(order, k)
			}
			methods[k] = append(methods[k], r.Method)
		}
		for _, k := range order {
			u := byName[k.name]
			if u == nil {
				u = &uses{}
				byName[k.name] = u
				names = append(names, k.name)
			}
			protected, open := g.SplitMethods(k.path, methods[k])
			for _, m := range protected {
				u.protected = append(u.protected, m+" "+hosts[i]+k.path)
			}
			if len(protected) == 0 { // both at one route: sharedHandlers reports it
				for _, m := range open {
					u.open = append(u.open, m+" "+hosts[i]+k.path)
				}
			}
		}
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		if u := byName[name]; len(u.protected) > 0 && len(u.open) > 0 {
			errs = append(errs, handlerid.AliasError("stepupecho", name, u.protected, u.open,
				"protect the handler itself with stepupecho.Require(guard, action)(handler), which protects it wherever it is mounted "+
					"(echo compares route names: if these are different handlers that share one, made by one factory or one method "+
					"on two receivers, give one of the routes a Name of its own)"))
		}
	}
	return errors.Join(errs...)
}

// comparable reports whether a route name tells handlers apart across
// routes: echo.WrapHandler names every handler it wraps alike, and Require
// protects its handler wherever it is.
func comparable(name string) bool {
	return name != requiredName && name != callbackName &&
		!strings.HasPrefix(name, "github.com/labstack/echo/v4.") && !strings.Contains(name, ".WrapHandler.func")
}

// checkCallback reports when e does not route a GET of Config.CallbackURL
// to Callback.
func checkCallback(g *stepup.Guard, e *echo.Echo) error {
	u := g.CallbackURL()
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: u.Path, RawPath: u.RawPath}, Host: u.Host, Header: http.Header{}}
	router := hostRouter(e, u.Host)
	probe := e.AcquireContext()
	probe.Reset(r, nil)
	router.Find(http.MethodGet, echo.GetPath(r), probe)
	path, allowed := probe.Path(), probe.Get(echo.ContextKeyHeaderAllow) != nil
	e.ReleaseContext(probe)
	name := ""
	for _, rt := range router.Routes() {
		if rt.Method == http.MethodGet && rt.Path == path {
			name = rt.Name
		}
	}
	switch {
	case path == "" || allowed || name == "":
		return fmt.Errorf("stepupecho: Config.CallbackURL %s: its path names no GET route: mount the callback there, "+
			"e.GET(%q, stepupecho.Callback(guard, e)), or the user passes the challenge and the parked request is lost", u, u.Path)
	case name != callbackName:
		return fmt.Errorf("stepupecho: Config.CallbackURL %s: echo routes it to %s, whose handler is %s, not stepupecho.Callback(guard, e) "+
			"(keep the route name echo gives Callback)", u, path, name)
	}
	return nil
}

func withDefaults(cfg Config) Config {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	return cfg
}

func enforce(c echo.Context, g *stepup.Guard, rule stepup.Rule, next echo.HandlerFunc, cfg Config) error {
	if cfg.BeforeFunc != nil {
		cfg.BeforeFunc(c)
	}
	req := c.Request()
	if names := c.ParamNames(); len(names) > 0 {
		// Path parameters for policy attributes, on a copy of the request.
		req = req.WithContext(req.Context())
		values := c.ParamValues()
		for i, n := range names {
			if i < len(values) {
				req.SetPathValue(strings.TrimPrefix(n, ":"), values[i])
			}
		}
	}
	var nextErr error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.SetRequest(r)
		nextErr = next(c)
	})
	if err := g.Enforce(c.Response(), req, rule, h); err != nil {
		return refusal(c, g, cfg, err)
	}
	return nextErr
}

// refusal answers a refusal: through Config.ErrorHandler when set, else
// written by the guard itself, so that a browser gets the same page from
// echo as from net/http and from the callback.
func refusal(c echo.Context, g *stepup.Guard, cfg Config, err error) error {
	if cfg.ErrorHandler != nil {
		return cfg.ErrorHandler(c, ToHTTPError(err))
	}
	var se *stepup.Error
	if !errors.As(err, &se) {
		return ToHTTPError(err) // not a refusal of the guard's: echo's to answer
	}
	g.WriteError(c.Response(), c.Request(), se)
	return nil
}

// ToHTTPError turns a refusal into an *echo.HTTPError carrying the public
// code and message, with the *stepup.Error as Internal.
func ToHTTPError(err error) *echo.HTTPError {
	var se *stepup.Error
	if !errors.As(err, &se) {
		return echo.NewHTTPError(http.StatusInternalServerError).SetInternal(err)
	}
	return echo.NewHTTPError(se.Status, map[string]string{"error": se.Code, "message": se.Message}).SetInternal(se)
}
