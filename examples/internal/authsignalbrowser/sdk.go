// Package authsignalbrowser serves a vendored copy of Authsignal's browser
// SDK, @authsignal/browser, to the examples' pages: the unmodified
// dist/index.min.js of the npm package at Version (MIT, see LICENSE.md and
// README.md). It defines the global authsignal:
//
//	const client = new authsignal.Authsignal({tenantId: "…"});
//	const {token} = await client.launch(url, {mode: "popup"});
package authsignalbrowser

import (
	_ "embed"
	"net/http"
	"strconv"
)

// Version is the vendored version of @authsignal/browser.
const Version = "1.16.0"

// ScriptSHA256 is the hex SHA-256 of the vendored file.
const ScriptSHA256 = "05f35d00d670d15eb3a6d96bbbab56861cc089fbd824cfe8aa0eb4d4e0278b1a"

// StyleHash is the CSP source that allows the <style> element the SDK's
// popup mode inserts with its default popupOptions, for a style-src
// without 'unsafe-inline'.
const StyleHash = "'sha256-5Az4NQb6dubGZHm0w3ZAqADXELlINI1b9WNySRWe9W4='"

//go:embed authsignal-browser.min.js
var script []byte

// Script returns a copy of the SDK's source.
func Script() []byte { return append([]byte(nil), script...) }

// Handler serves the SDK as JavaScript on GET and HEAD.
func Handler() http.Handler {
	size := strconv.Itoa(len(script))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Content-Length", size)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=3600")
		if r.Method == http.MethodGet {
			_, _ = w.Write(script)
		}
	})
}
