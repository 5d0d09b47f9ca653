package stepup

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/stepupkit/stepup/internal/handlerid"
)

// callbackHandler is the handler Callback returns. Its type is how the
// start-up checks recognise the guard's callback at the path of
// Config.CallbackURL.
type callbackHandler struct {
	g     *Guard
	serve http.HandlerFunc
}

func (h *callbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve(w, r) }

// callbackMethodValue is the code of guard.Callback(root).ServeHTTP taken
// as a function value (mux.HandleFunc(pattern, guard.Callback(mux).ServeHTTP)),
// the same whichever guard's callback it is.
var callbackMethodValue = handlerid.Code((*callbackHandler)(nil).ServeHTTP)

// notCallback says why h is not the guard's callback, or returns "" when
// it is.
func (g *Guard) notCallback(h http.Handler) string {
	switch cb := h.(type) {
	case *callbackHandler:
		if cb.g == g {
			return ""
		}
		return "the callback of another guard"
	case http.HandlerFunc:
		if handlerid.Code(cb) == callbackMethodValue {
			return "" // a method value hides its guard
		}
		if inner := handlerid.ServeHTTPOf(cb); inner != nil {
			return g.notCallback(inner)
		}
	}
	return handlerid.Name(h) + ", not guard.Callback (mount the handler guard.Callback returns itself; wrap the whole mux rather than the callback)"
}

// callbackRequest is a GET of the path of Config.CallbackURL, as the
// browser sends it back from the challenge.
func (g *Guard) callbackRequest() *http.Request {
	u := &url.URL{Path: g.callback.Path, RawPath: g.callback.RawPath}
	return &http.Request{Method: http.MethodGet, URL: u, Host: g.callback.Host, Header: http.Header{}}
}

// checkCallback reports when mux does not route the path of
// Config.CallbackURL to the guard's callback: the user would pass the
// challenge, land on a 404, and the parked request would be lost.
func (g *Guard) checkCallback(mux interface {
	Handler(*http.Request) (http.Handler, string)
}) error {
	h, pattern := mux.Handler(g.callbackRequest())
	if pattern == "" {
		return fmt.Errorf("stepup: Config.CallbackURL %s: its path names no route of the mux: mount the callback there, "+
			"mux.Handle(\"GET %s\", guard.Callback(handler)), or the user passes the challenge and the parked request is lost",
			g.callback, g.callback.EscapedPath())
	}
	if rg, ok := h.(*routeGuard); ok {
		h = rg.next // a ServeMux's handler at a route some policy names
	}
	if why := g.notCallback(h); why != "" {
		return fmt.Errorf("stepup: Config.CallbackURL %s: the mux routes it to %q, which serves %s", g.callback, pattern, why)
	}
	return nil
}

// registration is one handler registered on a ServeMux.
type registration struct {
	pattern string
	handler http.Handler
}

// checkAliases reports each handler registered both under a pattern that
// a policy protects and under one where it runs without a step-up (for
// some method): the alias is an open door to the protected handler.
func (g *Guard) checkAliases(regs []registration) error {
	type uses struct {
		handler         http.Handler
		protected, open []string
	}
	byID := map[handlerid.ID]*uses{}
	var order []handlerid.ID
	// What Require returns is protected wherever it is mounted; its code
	// is the same for every action and handler.
	required := handlerid.Code(g.Require("checkAliases")(http.NotFoundHandler()))
	for _, reg := range regs {
		if required != 0 && handlerid.Code(reg.handler) == required {
			continue
		}
		id := handlerid.Of(reg.handler)
		u := byID[id]
		if u == nil {
			u = &uses{handler: reg.handler}
			byID[id] = u
			order = append(order, id)
		}
		method, route := splitPattern(reg.pattern, "")
		methods := []string{method}
		if method == "" {
			methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
		}
		protected, open := g.SplitMethods(route, methods)
		if len(protected) > 0 {
			u.protected = append(u.protected, reg.pattern)
		}
		if len(open) > 0 && len(protected) == 0 {
			// A pattern protected for some of its methods only is
			// CheckServeMux's "accepts every method".
			u.open = append(u.open, reg.pattern)
		}
	}
	var errs []error
	for _, id := range order {
		u := byID[id]
		if len(u.protected) == 0 || len(u.open) == 0 {
			continue
		}
		errs = append(errs, handlerid.AliasError("stepup", handlerid.Name(u.handler), u.protected, u.open,
			"protect the handler itself with guard.Require(action)(handler), which protects it wherever it is mounted"))
	}
	return errors.Join(errs...)
}

// CallbackURL returns Config.CallbackURL, parsed (a copy): the route an
// adapter's start-up check expects its callback at.
func (g *Guard) CallbackURL() *url.URL {
	u := *g.callback
	return &u
}
