package stepup

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
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

// CheckServeMux reports policies that name a route mux does not have, or
// whose method the mux pattern does not pin down (a method-less pattern
// also dispatches other methods, which would then pass unprotected).
func (g *Guard) CheckServeMux(mux *http.ServeMux) error {
	var errs []error
	for k := range g.rules {
		methods := []string{k.method}
		if k.method == "*" {
			methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
		}
		path := samplePath(k.route)
		var err error
		for _, m := range methods {
			req := &http.Request{Method: m, URL: &url.URL{Path: path}, Host: "example.invalid", Header: http.Header{}}
			_, pattern := mux.Handler(req)
			pm, route := splitPattern(pattern, "")
			switch {
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
