package emulator

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// The pre-built UI protocol of Authsignal's browser SDK (@authsignal/browser):
// launch(url, {mode: "popup"}) loads url+"&mode=popup" in an iframe,
// {mode: "window"} in a window.open window (with the same "&mode=popup").
// The SDK accepts messages from url's origin only: JSON strings
// {"event":"AUTHSIGNAL_READY"} (reveal the iframe) and
// {"event":"AUTHSIGNAL_CLOSE_POPUP","token":"…"} (done: close it and resolve
// {token}), and raw objects {height: n} (resize the iframe).
const (
	modePopup  = "popup"
	modeWindow = "window"

	eventReady = "AUTHSIGNAL_READY"
	eventClose = "AUTHSIGNAL_CLOSE_POPUP"
)

// launchMode is the page's mode parameter: "popup" or "window" (the SDK
// sends "popup" for both), or "" for redirect mode, the default, which
// any other value also means.
func launchMode(v string) string {
	if v == modePopup || v == modeWindow {
		return v
	}
	return ""
}

// appOrigins validates Config.AppOrigins and returns them as
// scheme://host[:port], without a trailing slash.
func appOrigins(in []string) ([]string, error) {
	var out []string
	for i, s := range in {
		o, ok := originOf(strings.TrimRight(s, "/"))
		if !ok || strings.TrimRight(s, "/") != o {
			return nil, fmt.Errorf("emulator: AppOrigins[%d] %q is not an origin of the form http(s)://host[:port]", i, s)
		}
		if !contains(out, o) {
			out = append(out, o)
		}
	}
	return out, nil
}

// originOf returns the origin of an absolute http(s) URL.
func originOf(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !validHost(u.Host) || u.User != nil ||
		strings.ContainsAny(u.Host, "*") {
		return "", false
	}
	return u.Scheme + "://" + u.Host, true
}

// messageTargets are the origins the page may post to for an action whose
// track named redirectURL: the configured application origins and the
// redirect URL's origin. postMessage delivers to a target origin only if
// the receiving window has that origin, so the token reaches nobody else,
// whoever opened or framed the page.
func (e *Emulator) messageTargets(redirectURL string) []string {
	targets := append([]string{}, e.cfg.AppOrigins...)
	if o, ok := originOf(redirectURL); ok && !contains(targets, o) {
		targets = append(targets, o)
	}
	return targets
}

// frameAncestors is the CSP frame-ancestors source list.
func (e *Emulator) frameAncestors() string {
	if len(e.cfg.AppOrigins) == 0 {
		return "'none'"
	}
	return strings.Join(e.cfg.AppOrigins, " ")
}

// closeMessage is the AUTHSIGNAL_CLOSE_POPUP message, with the token when
// the challenge finished and without when the user left it.
func closeMessage(token string) string {
	b, _ := json.Marshal(struct {
		Event string `json:"event"`
		Token string `json:"token,omitempty"`
	}{eventClose, token}) // strings: cannot fail
	return string(b)
}

// readyMessage is the AUTHSIGNAL_READY message.
const readyMessage = `{"event":"` + eventReady + `"}`
