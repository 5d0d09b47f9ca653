package stepup

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
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

// reading is one request as every standard reader sees it.
type reading struct {
	req    *http.Request
	query  url.Values
	form   url.Values // the url-encoded body, when net/http parses it (POST, PUT, PATCH)
	unread url.Values // a url-encoded body that net/http does not parse (other methods)
	json   any        // the JSON body, when it is (or looks like) JSON
	isJSON bool
}

// attributes collects the custom attributes for a track call, or refuses a
// request that the rules and the handler could read differently.
func (r *rule) attributes(req *http.Request, body []byte) (map[string]any, error) {
	if len(r.Attributes) == 0 && r.Custom == nil {
		return nil, nil
	}
	var rd *reading
	out := make(map[string]any, len(r.Attributes))
	for _, a := range r.Attributes {
		var raw string
		var ok bool
		var err error
		if a.From == FromHeader {
			raw, ok, err = headerValue(req, a.Key)
		} else {
			if rd == nil {
				if rd, err = read(req, body); err != nil {
					return nil, err
				}
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
		if rd == nil {
			// The hook reads the body its own way: hand it only bodies that
			// every reader parses alike.
			if _, err := read(req, body); err != nil {
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

// read parses the query and the body strictly, as every reader would.
func read(req *http.Request, body []byte) (*reading, error) {
	rd := &reading{req: req}
	q, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		return nil, ambiguous("malformed query string: %v", err)
	}
	rd.query = q
	kind, err := contentKind(req.Header)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return rd, nil
	}
	switch kind {
	case bodyXML:
		return nil, ambiguous("an XML body cannot be read by the guard, and echo's binder would read it")
	case bodyMultipart:
		return nil, ambiguous("a multipart body cannot be read by the guard")
	case bodyForm:
		vs, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, ambiguous("malformed form body: %v", err)
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
			return nil, ambiguous("JSON body: %v", err)
		}
		rd.json, rd.isJSON = doc, true
	}
	return rd, nil
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
	var seen []string
	add := func(place string, vs ...string) error {
		for _, v := range vs {
			if len(seen) > 0 && v != seen[0] {
				return ambiguous("%q has different values in the request (%s)", a.Key, place)
			}
			seen = append(seen, v)
		}
		return nil
	}
	keys := []string{a.Key}
	if a.From == FromJSON {
		if i := strings.LastIndexByte(a.Key, '.'); i >= 0 {
			keys = append(keys, a.Key[i+1:]) // a nested field binders could fill from a flat key
		}
	}
	for _, key := range keys {
		for _, src := range []struct {
			place string
			vals  url.Values
		}{{"query", rd.query}, {"form body", rd.form}, {"parsed form", rd.req.Form}, {"parsed form", rd.req.PostForm}} {
			for k, vs := range src.vals {
				if strings.EqualFold(k, key) { // as foldKey(k) == foldKey(key), without allocating
					if err := add(src.place, vs...); err != nil {
						return "", false, err
					}
				}
			}
		}
		for k := range rd.unread {
			if strings.EqualFold(k, key) { // as foldKey(k) == foldKey(key), without allocating
				return "", false, ambiguous("%q is in a form body of a %s request, which net/http does not parse", key, rd.req.Method)
			}
		}
		if v := rd.req.PathValue(key); v != "" {
			if err := add("path", v); err != nil {
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
			if err := add("JSON body", scalarText(v)); err != nil {
				return "", false, err
			}
		}
	}
	if len(seen) == 0 {
		return "", false, nil
	}
	return seen[0], true, nil
}
