package stepup

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
)

// The rules judge what the handler executes.
//
// A handler may read a value through net/http (FormValue, PostFormValue,
// URL.Query, a cached r.Form), encoding/json (into a struct or a map), or
// echo's DefaultBinder (path, then query for GET/DELETE/HEAD, then a body
// chosen by Content-Type, with keys matched case-insensitively). Where these
// readers could disagree with the guard, step-up would be judged on one
// value and executed on another. So the guard reads a request the strict
// way: it finds every occurrence of an attribute's key in every place any of
// those readers looks, and
//
//   - refuses the request when the occurrences disagree (repeated keys,
//     query against body, path against body, keys that differ only in case
//     or by Unicode folding such as "ſ" for "s");
//   - refuses a request that one of those readers could parse differently
//     from the guard: a malformed query or form pair, a Content-Type that
//     echo and mime.ParseMediaType classify differently or with a charset
//     other than UTF-8, a JSON body with trailing data, a repeated key,
//     nesting beyond 64 levels, an XML body, a form body on a method
//     net/http does not parse that names an attribute;
//   - refuses a value that does not convert to the attribute's Type,
//     instead of leaving it out.
//
// A refusal is a 400 before anything is tracked or parked. What remains is
// one value per attribute (or none, when no reader finds the key), and that
// value is what Authsignal's rules see.

// ambiguityError is a request the guard cannot read unambiguously.
type ambiguityError struct{ reason string }

func (e *ambiguityError) Error() string { return e.reason }

func ambiguous(format string, args ...any) error {
	return &ambiguityError{fmt.Sprintf(format, args...)}
}

// bodyKind is how a request body is read, by Content-Type.
type bodyKind uint8

const (
	bodyOther bodyKind = iota
	bodyForm
	bodyJSON
	bodyXML
	bodyMultipart
)

// reading is one request as every standard reader sees it. The query and
// a url-encoded body are kept raw, checked well-formed by read, and
// searched for a key without building url.Values (queryValues).
type reading struct {
	req    *http.Request
	query  string // the raw query string
	form   string // the url-encoded body, when net/http parses it (POST, PUT, PATCH)
	unread string // a url-encoded body that net/http does not parse (other methods)
	json   any    // the JSON body, when it is (or looks like) JSON
	isJSON bool
}

// attributes collects the custom attributes for a track call, or refuses a
// request that the rules and the handler could read differently.
func (r *rule) attributes(req *http.Request, body []byte) (map[string]any, error) {
	if len(r.Attributes) == 0 && r.Custom == nil {
		return nil, nil
	}
	var rd reading
	haveRd := false
	out := make(map[string]any, len(r.Attributes))
	for _, a := range r.Attributes {
		var raw string
		var ok bool
		var err error
		if a.From == FromHeader {
			raw, ok, err = headerValue(req, a.Key)
		} else {
			if !haveRd {
				if err = read(req, body, &rd); err != nil {
					return nil, err
				}
				haveRd = true
			}
			raw, ok, err = rd.value(a)
		}
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		v, err := convert(raw, a.Type)
		if err != nil {
			return nil, ambiguous("attribute %q: %v", a.Name, err)
		}
		out[a.Name] = v
	}
	if r.Custom != nil {
		if !haveRd {
			// The hook reads the body its own way: hand it only bodies that
			// every reader parses alike.
			if err := read(req, body, &rd); err != nil {
				return nil, err
			}
		}
		extra, err := r.Custom(req, body)
		if err != nil {
			return nil, err
		}
		for k, v := range extra {
			out[k] = v
		}
	}
	return out, nil
}

// headerValue is the one value of a header; a header sent twice is
// ambiguous (Header.Get reads the first, Values all of them).
func headerValue(req *http.Request, key string) (string, bool, error) {
	vs := req.Header.Values(key)
	switch len(vs) {
	case 0:
		return "", false, nil
	case 1:
		return vs[0], true, nil
	}
	return "", false, ambiguous("header %s sent %d times", http.CanonicalHeaderKey(key), len(vs))
}

// read checks the query and the body strictly, as every reader would, and
// fills rd.
func read(req *http.Request, body []byte, rd *reading) error {
	*rd = reading{req: req, query: req.URL.RawQuery}
	if err := checkQuery(rd.query); err != nil {
		return ambiguous("malformed query string: %v", err)
	}
	kind, err := contentKind(req.Header)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return nil
	}
	switch kind {
	case bodyXML:
		return ambiguous("an XML body cannot be read by the guard, and echo's binder would read it")
	case bodyMultipart:
		return ambiguous("a multipart body cannot be read by the guard")
	case bodyForm:
		vs := string(body)
		if err := checkQuery(vs); err != nil {
			return ambiguous("malformed form body: %v", err)
		}
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			rd.form = vs
		default:
			rd.unread = vs
		}
	}
	if kind == bodyJSON || looksLikeJSON(body) {
		doc, err := decodeJSON(body)
		if err != nil {
			return ambiguous("JSON body: %v", err)
		}
		rd.json, rd.isJSON = doc, true
	}
	return nil
}

// contentKind classifies Content-Type the way both mime.ParseMediaType
// (net/http) and echo's binder (the text before ";", trimmed, compared
// exactly) do, and refuses a type they would classify differently.
func contentKind(h http.Header) (bodyKind, error) {
	cts := h.Values("Content-Type")
	switch len(cts) {
	case 0:
		return bodyOther, nil
	case 1:
	default:
		return 0, ambiguous("Content-Type sent %d times", len(cts))
	}
	ct := cts[0]
	switch ct {
	case "application/x-www-form-urlencoded", "application/json":
		// What both parsers make of the two common exact spellings.
		return kindOf(ct), nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, ambiguous("malformed Content-Type: %v", err)
	}
	base, _, _ := strings.Cut(ct, ";")
	kind, echoKind := kindOf(mt), kindOf(strings.TrimSpace(base))
	if kind != echoKind {
		return 0, ambiguous("Content-Type %q is read as different types by different parsers", mt)
	}
	if cs, ok := params["charset"]; ok && kind != bodyOther && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return 0, ambiguous("charset %q: only UTF-8 bodies are read", cs)
	}
	return kind, nil
}

func kindOf(mediaType string) bodyKind {
	switch mediaType {
	case "application/x-www-form-urlencoded":
		return bodyForm
	case "application/json":
		return bodyJSON
	case "application/xml", "text/xml":
		return bodyXML
	case "multipart/form-data":
		return bodyMultipart
	}
	return bodyOther
}

// looksLikeJSON reports a body that a handler decoding JSON whatever the
// Content-Type would read as an object or array.
func looksLikeJSON(body []byte) bool {
	for _, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

// value finds every occurrence of a's key where a reader could find it and
// returns the one value they all carry.
func (rd *reading) value(a Attribute) (string, bool, error) {
	one := agreement{key: a.Key}
	keys := [2]string{a.Key}
	n := 1
	if a.From == FromJSON {
		if i := strings.LastIndexByte(a.Key, '.'); i >= 0 {
			keys[1], n = a.Key[i+1:], 2 // a nested field binders could fill from a flat key
		}
	}
	for _, key := range keys[:n] {
		if err := one.addRaw("query", rd.query, key); err != nil {
			return "", false, err
		}
		if err := one.addRaw("form body", rd.form, key); err != nil {
			return "", false, err
		}
		for _, vals := range [2]url.Values{rd.req.Form, rd.req.PostForm} {
			for k, vs := range vals {
				if strings.EqualFold(k, key) { // as foldKey(k) == foldKey(key), without allocating
					for _, v := range vs {
						if err := one.add("parsed form", v); err != nil {
							return "", false, err
						}
					}
				}
			}
		}
		if _, found := queryValue(rd.unread, key); found {
			return "", false, ambiguous("%q is in a form body of a %s request, which net/http does not parse", key, rd.req.Method)
		}
		if v := rd.req.PathValue(key); v != "" {
			if err := one.add("path", v); err != nil {
				return "", false, err
			}
		}
	}
	if rd.isJSON {
		v, found, err := jsonPath(rd.json, a.Key)
		if err != nil {
			return "", false, err
		}
		if found {
			if _, isNum := v.(json.Number); isNum && a.Type == TypeBool {
				return "", false, ambiguous("JSON %q is a number, not a boolean", a.Key)
			}
			if err := one.add("JSON body", scalarText(v)); err != nil {
				return "", false, err
			}
		}
	}
	return one.value, one.found, nil
}

// agreement is the one value every occurrence of a key must carry.
type agreement struct {
	key   string
	value string
	found bool
}

func (g *agreement) add(place, v string) error {
	if g.found && v != g.value {
		return ambiguous("%q has different values in the request (%s)", g.key, place)
	}
	g.value, g.found = v, true
	return nil
}

// addRaw adds every value of key in the raw query or form s.
func (g *agreement) addRaw(place, s, key string) error {
	for s != "" {
		v, found := queryValue(s, key)
		if !found {
			return nil
		}
		if err := g.add(place, v.value); err != nil {
			return err
		}
		s = v.rest
	}
	return nil
}

// The query and a url-encoded body are read without url.Values: checkQuery
// accepts exactly what url.ParseQuery parses without an error, and
// queryValue then finds a key's values in the raw string, unescaping only
// what matches. Neither allocates for a well-formed string whose matching
// keys and values carry no escapes.

// maxQueryParams is url.ParseQuery's limit on the number of pairs
// (net/url's defaultMaxParams), unless GODEBUG urlmaxqueryparams changes it.
const maxQueryParams = 10000

// checkQuery returns url.ParseQuery's error for s, or nil when it parses.
func checkQuery(s string) error {
	if queryLimitChanged() {
		_, err := url.ParseQuery(s) // a limit of the process's own: ask net/url
		return err
	}
	ok := strings.Count(s, "&") < maxQueryParams
	for i := 0; ok && i < len(s); i++ {
		switch s[i] {
		case ';':
			ok = false
		case '%':
			ok = i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2])
		}
	}
	if ok {
		return nil
	}
	if _, err := url.ParseQuery(s); err != nil {
		return err // net/url's own words
	}
	return errors.New("malformed") // unreachable while checkQuery agrees with net/url (FuzzCheckQuery)
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// queryLimitChanged reports a GODEBUG urlmaxqueryparams setting, which
// makes url.ParseQuery's limit other than maxQueryParams.
func queryLimitChanged() bool { return godebugMaySet("urlmaxqueryparams") }

// godebugMaySet reports whether the GODEBUG setting name may be set, in
// the environment or by the build (//go:debug, go.mod godebug lines, in
// the binary's DefaultGODEBUG); with no build information, it may.
func godebugMaySet(name string) bool {
	return !buildInfoRead || strings.Contains(buildSettings, name) || strings.Contains(os.Getenv("GODEBUG"), name)
}

// buildSettings are the values of the binary's build settings, one per
// line (DefaultGODEBUG among them).
var buildSettings, buildInfoRead = func() (string, bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", false
	}
	var b strings.Builder
	for _, s := range bi.Settings {
		b.WriteString(s.Value + "\n")
	}
	return b.String(), true
}()

// queryMatch is a pair of a raw query whose key matched: its unescaped
// value, and the rest of the query after it.
type queryMatch struct{ value, rest string }

// queryValue finds the first pair of s, a query or url-encoded body that
// checkQuery accepts, whose unescaped key equals key under Unicode folding
// (as foldKey(k) == foldKey(key)), as url.ParseQuery would split and
// unescape it.
func queryValue(s, key string) (queryMatch, bool) {
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		k, v, _ := strings.Cut(pair, "=")
		if pair == "" || !strings.EqualFold(unescapeQuery(k), key) {
			continue
		}
		return queryMatch{value: unescapeQuery(v), rest: s}, true
	}
	return queryMatch{}, false
}

// unescapeQuery is url.QueryUnescape of a component checkQuery accepted
// (which cannot fail); it returns s itself, without allocating, when there
// is nothing to unescape.
func unescapeQuery(s string) string {
	u, _ := url.QueryUnescape(s)
	return u
}
