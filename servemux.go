package stepup

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
)

// cleanPath is net/http's: the path the ServeMux redirects an unclean
// request path to.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// withPathValues sets the wildcards of route, a pattern the mux matched
// for r, on a copy of r, so that path attributes and hooks can read them
// with PathValue. The mux already decided the match; this only copies the
// segment values out, as the mux would.
func withPathValues(r *http.Request, route string) *http.Request {
	segs := strings.Split(strings.TrimPrefix(route, "/"), "/")
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	r2 := r.WithContext(r.Context())
	for i, s := range segs {
		if i >= len(parts) || !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") || s == "{$}" {
			continue
		}
		name := s[1 : len(s)-1]
		raw := parts[i]
		if rest, ok := strings.CutSuffix(name, "..."); ok {
			name, raw = rest, strings.Join(parts[i:], "/")
		}
		v, err := url.PathUnescape(raw)
		if err != nil {
			continue
		}
		r2.SetPathValue(name, v)
	}
	return r2
}

// splitPattern turns a ServeMux pattern ("POST example.com/x/{id}") into
// the method it dispatches on (the request's when it has none) and its
// path.
func splitPattern(pattern, reqMethod string) (string, string) {
	if pattern == "" {
		return "", ""
	}
	method := reqMethod
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		method = pattern[:i]
		pattern = strings.TrimLeft(pattern[i:], " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:] // drop a host
	}
	return method, pattern
}

// CheckServeMux reports the wiring mistakes it can see in mux, so that
// none leaves a route open or a parked request lost. Call it at start-up,
// after the routes are registered.
//
//   - A policy that names a route mux does not have (a typo protects
//     nothing), or whose method the mux pattern does not pin down (a
//     method-less pattern also dispatches other methods, which would then
//     pass unprotected).
//   - The path of Config.CallbackURL not routed to the handler
//     guard.Callback returned (mounted itself, not inside a wrapper): the
//     user would pass the challenge, land on a 404, and the parked request
//     would be lost.
//
// An http.ServeMux cannot list its routes, so CheckServeMux cannot see a
// protected handler registered again under an unprotected pattern;
// register the routes on NewServeMux, whose Check reports it.
func (g *Guard) CheckServeMux(mux *http.ServeMux) error {
	return errors.Join(g.checkRoutes(mux), g.checkCallback(mux))
}

// checkRoutes reports the policies whose route mux does not have or whose
// method its pattern does not pin down.
func (g *Guard) checkRoutes(mux *http.ServeMux) error {
	var errs []error
	for k := range g.rules.keys() {
		methods := []string{k.method}
		if k.method == "*" {
			methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
		}
		path := samplePath(k.route)
		var err error
		for _, m := range methods {
			u := &url.URL{Path: path}
			if p, err := url.PathUnescape(path); err == nil && p != path {
				u.Path, u.RawPath = p, path // a route may escape a character, as a pattern may
			}
			req := &http.Request{Method: m, URL: u, Host: "example.invalid", Header: http.Header{}}
			_, pattern := mux.Handler(req)
			pm, route := splitPattern(pattern, "")
			switch {
			case pattern == "":
				err = fmt.Errorf("stepup: policy %s %s names no route of the mux", k.method, k.route)
			case route != k.route:
				err = fmt.Errorf("stepup: policy %s %s: the mux routes it to %q", k.method, k.route, pattern)
			case k.method != "*" && pm == "":
				err = fmt.Errorf("stepup: policy %s %s: mux pattern %q accepts every method; register it with the method or use \"*\"", k.method, k.route, pattern)
			case k.method == http.MethodHead && pm == http.MethodGet:
				err = nil // a GET pattern serves HEAD
			case k.method != "*" && pm != k.method:
				err = fmt.Errorf("stepup: policy %s %s: the mux routes it to %q", k.method, k.route, pattern)
			default:
				err = nil
			}
			if err == nil {
				break // one method reaching the route is enough for "*"
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func samplePath(route string) string {
	segs := strings.Split(route, "/")
	for i, s := range segs {
		switch {
		case s == "{$}":
			segs[i] = ""
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
			segs[i] = "x"
		}
	}
	return strings.Join(segs, "/")
}

// ServeMux is an http.ServeMux whose protected routes the guard wraps as
// they are registered, the way Require wraps one handler: a pattern that
// a policy of the table names (for any method) gets a handler that runs
// the step-up for the policy of the method the mux dispatched; every
// other pattern is registered as given, so that a request to an
// unprotected route never reaches the guard at all. The rule is chosen
// from the pattern the mux matched (the request's Pattern), as
// Middleware chooses it.
//
// The mux inside is not reachable: every handler goes through Handle, so
// no protected route can be registered unwrapped. Call Check once the
// routes are registered.
type ServeMux struct {
	g       *Guard
	mux     *http.ServeMux
	covered map[string]*table // the policies of each route some policy names

	mu   sync.Mutex
	regs []registration // every Handle, with the handler as given, for Check
}

// NewServeMux returns an empty ServeMux protected by the guard's policy
// table.
func (g *Guard) NewServeMux() *ServeMux {
	m := &ServeMux{g: g, mux: http.NewServeMux(), covered: map[string]*table{}}
	for route, own := range g.rules.routes() {
		m.covered[route] = own
	}
	return m
}

// Handle registers handler for pattern, as http.ServeMux.Handle does
// (and panics as it does on an invalid or conflicting pattern), wrapped
// by the guard when a policy names the pattern's route.
func (m *ServeMux) Handle(pattern string, handler http.Handler) {
	given := handler
	if _, route := splitPattern(pattern, ""); m.covered[route] != nil {
		// The route's own policies: a request never looks up the whole table.
		handler = &routeGuard{g: m.g, rules: m.covered[route], next: handler}
	}
	m.mux.Handle(pattern, handler)
	m.mu.Lock()
	m.regs = append(m.regs, registration{pattern: pattern, handler: given})
	m.mu.Unlock()
}

// HandleFunc registers handler for pattern; see Handle.
func (m *ServeMux) HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(handler))
}

// ServeHTTP dispatches the request to the handler whose pattern matches
// it, as http.ServeMux does.
func (m *ServeMux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.mux.ServeHTTP(w, r) }

// Handler returns the handler and pattern the mux would use for r, as
// http.ServeMux.Handler does.
func (m *ServeMux) Handler(r *http.Request) (http.Handler, string) { return m.mux.Handler(r) }

// Check reports what CheckServeMux reports (a policy whose route the mux
// does not have or whose method its pattern does not pin down; the
// callback not mounted at Config.CallbackURL's path), and every handler
// registered both under a protected pattern and under one where nothing
// protects it: a second pattern (a versioned prefix, "/v1/transfer" beside
// "/transfer") is an open door to the protected handler. Protect a handler
// meant to be served under several patterns with guard.Require, which
// protects it wherever it is mounted. Call Check at start-up, after the
// routes are registered.
//
// "The same handler" is the same value as registered: one http.Handler
// value (a pointer to a handler struct, what a constructor returned once),
// one top-level function, or one method value of one receiver
// (app.transfer, however often it is written). A closure created anew at
// each registration, or a handler built by two calls of its constructor,
// is a different handler each time, and is not reported. Handlers shared
// only among unprotected patterns (a 404 page, a file server) are fine.
func (m *ServeMux) Check() error {
	m.mu.Lock()
	regs := slices.Clone(m.regs)
	m.mu.Unlock()
	return errors.Join(m.g.checkRoutes(m.mux), m.g.checkCallback(m.mux), m.g.checkAliases(regs))
}

// routeGuard runs the step-up in front of one handler of a ServeMux, for
// the policy of the pattern the mux matched and the method it dispatched.
type routeGuard struct {
	g     *Guard
	rules *table // the policies of the route
	next  http.Handler
}

func (h *routeGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Pattern == "" {
		// Only a ServeMux calls this handler, and it sets the pattern.
		h.g.writeError(w, r, h.g.Misconfigured(r, "a stepup.ServeMux handler ran without the pattern its mux matched"))
		return
	}
	rl := lookupPattern(h.rules, r.Pattern, r.Method)
	if rl == nil {
		h.next.ServeHTTP(w, r)
		return
	}
	if err := h.g.Enforce(w, r, Rule{rl}, h.next); err != nil {
		h.g.writeError(w, r, err)
	}
}
