package stepup

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
)

// What the user approves. An Attribute with Display set is shown to the
// user as part of the action they approve (PSD2 RTS Art. 5, "dynamic
// linking": the payer sees amount and payee while authenticating):
//
//   - API clients get it in the 401 challenge JSON, under "display": each
//     displayed attribute's value as sent to Authsignal in custom (a
//     number stays a number), so that a single-page application shows it
//     beside the browser SDK's popup;
//   - browsers, when Config.ConfirmPage is set, get a confirmation page
//     that shows the values and links on to the challenge URL (already
//     checked against ChallengeOrigins), instead of a 303 straight there.
//
// The values shown are the values judged: the request that runs after the
// challenge must present the same (the judged digest), so what the user
// saw is what runs.

// DisplayValue is one displayed attribute, as a confirmation page shows it.
type DisplayValue struct {
	Name  string // the attribute's Name
	Value any    // the value as sent to Authsignal: a string, a float64 or a bool
}

// Text is the value as a page shows it: a number without exponent or
// trailing zeros, a bool as true or false.
func (d DisplayValue) Text() string {
	switch v := d.Value.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(d.Value)
}

// ConfirmData is what Config.ConfirmPage is executed with.
type ConfirmData struct {
	Action  string         // the Authsignal action code
	Display []DisplayValue // the displayed attributes, in the policy's order; absent ones left out
	// URL is the challenge URL, checked against Config.ChallengeOrigins.
	// Use it only as the href of a link: html/template escapes it there.
	URL string
}

// display is the part of custom that rl's displayed attributes name, in
// their order; nil when none is displayed or present.
func (rl *rule) display(custom map[string]any) []DisplayValue {
	var out []DisplayValue
	for _, a := range rl.Attributes {
		if v, ok := custom[a.Name]; ok && a.Display {
			out = append(out, DisplayValue{a.Name, v})
		}
	}
	return out
}

// displayJSON is display as the 401 challenge JSON carries it.
func displayJSON(d []DisplayValue) map[string]any {
	if len(d) == 0 {
		return nil
	}
	out := make(map[string]any, len(d))
	for _, v := range d {
		out[v.Name] = v.Value
	}
	return out
}

// ConfirmTemplate returns a new copy of the package's confirmation page,
// to set as Config.ConfirmPage: it lists the displayed values and offers a
// link on to the challenge, and nothing else. A page of your own is
// executed with a ConfirmData.
func ConfirmTemplate() *template.Template {
	return template.Must(template.New("confirm").Parse(confirmPage))
}

const confirmPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Confirm what you approve</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem}dt{font-weight:600}a.go{display:inline-block;margin-top:1rem;padding:.6rem 1.2rem;background:#1a56db;color:#fff;border-radius:.3rem;text-decoration:none}</style>
</head><body><h1>Confirm what you approve</h1>
<p>You are about to verify <strong id="stepup-action">{{.Action}}</strong> with:</p>
<dl id="stepup-display">{{range .Display}}<dt>{{.Name}}</dt><dd>{{.Text}}</dd>{{end}}</dl>
<p>Your verification will approve exactly this. If it is not what you asked for, close this page: nothing has been done.</p>
<p><a class="go" id="stepup-continue" href="{{.URL}}" rel="noreferrer">Continue to verification</a></p>
</body></html>
`

// renderConfirm renders Config.ConfirmPage for a browser challenge, before
// anything is written or saved, so that a template error is a clean
// refusal.
func (g *Guard) renderConfirm(action, challengeURL string, display []DisplayValue) ([]byte, *Error) {
	var buf bytes.Buffer
	if err := g.cfg.ConfirmPage.Execute(&buf, ConfirmData{Action: action, Display: display, URL: challengeURL}); err != nil {
		return nil, internalError(fmt.Errorf("ConfirmPage: %w", err))
	}
	return buf.Bytes(), nil
}

// writeConfirm answers with a rendered confirmation page: never framed,
// cached, or sent on as a referrer; no script, no form.
func writeConfirm(w http.ResponseWriter, page []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(page)
}
