package emulator

import (
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pageData is everything the page template shows; html/template escapes it.
type pageData struct {
	Title   string
	Step    string // invalid, choose, code, enrol, totp-setup, passkey, status, done, left
	UserID  string
	Action  string
	What    string   // the action code for people: "changeEmail" is "Change email"
	Details []detail // the track's custom attributes: what the user approves
	Token   string   // the challenge token, carried in the forms
	CSRF    string
	Mode    string // "popup" or "window" (the SDK's launch modes), "" for redirect mode
	Error   string
	Enrol   bool
	Email   string
	// EmailFixed: the enrolment code goes to the user's enrolled address,
	// which the page shows and does not let them change.
	EmailFixed bool
	// Passkey: the page has the passkey button and its script; Register:
	// the button registers one (enrolment) rather than signs in.
	Passkey    bool
	Register   bool
	TOTPSecret string       // an authenticator app being set up: its secret,
	TOTPQR     template.URL // and its QR code as a data: URL (made here, not from input)
	SDK        bool         // popup or window mode with origins to post to: the SDK script runs
	Methods    []methodChoice
	Method     string
	Channel    string
	To         string
	DevCode    string
	Attempts   int // attempts left
	State      string
	Message    string
	DoneToken  string
	Active     bool

	// Popup and window mode: the script's nonce, the origins it posts to,
	// and the AUTHSIGNAL_CLOSE_POPUP message it posts, if any.
	Nonce   string
	Origins []string
	Close   string
}

type methodChoice struct{ Code, Label string }

// detail is one custom attribute as the page lists it.
type detail struct{ Name, Value string }

const (
	maxDetails     = 12  // attributes listed; the rest are counted
	maxDetailValue = 120 // runes of a value shown
)

// details lists custom attributes by name: numbers grouped by thousands,
// strings as sent, anything else as compact JSON, each value cut short.
func details(custom map[string]any) []detail {
	names := make([]string, 0, len(custom))
	for k := range custom {
		names = append(names, k)
	}
	slices.Sort(names)
	var out []detail
	for i, k := range names {
		if i == maxDetails {
			out = append(out, detail{Name: "…", Value: fmt.Sprintf("%d more", len(names)-maxDetails)})
			break
		}
		out = append(out, detail{Name: humanize(k), Value: clip(detailValue(custom[k]))})
	}
	return out
}

func detailValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return groupNumber(v)
	case json.Number:
		if f, err := v.Float64(); err == nil {
			return groupNumber(f)
		}
		return v.String()
	case bool:
		return map[bool]string{true: "yes", false: "no"}[v]
	case nil:
		return "—"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// groupNumber writes 5000 as "5,000" and 1234.5 as "1,234.5".
func groupNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1e15 {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	s, negative := strings.CutPrefix(s, "-")
	whole, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	if negative {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		b.WriteString("." + frac)
	}
	return b.String()
}

func clip(s string) string {
	if utf8.RuneCountInString(s) <= maxDetailValue {
		return s
	}
	return string([]rune(s)[:maxDetailValue-1]) + "…"
}

// humanize writes an action code or attribute name for people:
// "changeEmail", "change_email" and "change-email" are all "Change email".
func humanize(code string) string {
	var words []string
	var w []rune
	flush := func() {
		if len(w) > 0 {
			words = append(words, strings.ToLower(string(w)))
			w = w[:0]
		}
	}
	prev := rune(0)
	for _, r := range code {
		switch {
		case r == '_' || r == '-' || r == '.' || unicode.IsSpace(r):
			flush()
		case unicode.IsUpper(r) && (unicode.IsLower(prev) || unicode.IsDigit(prev)):
			flush()
			w = append(w, r)
		default:
			w = append(w, r)
		}
		prev = r
	}
	flush()
	if len(words) == 0 {
		return code
	}
	s := strings.Join(words, " ")
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

var methodLabels = map[string]string{MethodEmailOTP: "Email me a code", MethodSMS: "Text me a code",
	MethodAuthenticatorApp: "Use my authenticator app", MethodPasskey: "Use a passkey"}

var enrolLabels = map[string]string{MethodEmailOTP: "Email codes", MethodAuthenticatorApp: "Authenticator app",
	MethodPasskey: "Passkey"}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Authsignal emulator</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;color:#1f2328;background:#f6f8fa;margin:0}
body.popup{background:#fff}
body.popup main{margin:0;border:0;border-radius:0}
main{max-width:26rem;margin:4rem auto;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:1.5rem 2rem}
h1{font-size:1.4rem;margin:0 0 .75rem}
.approve{border:1px solid #d0d7de;border-left:4px solid #0b5cad;border-radius:6px;padding:.6rem .9rem;margin:0 0 1rem;background:#f6f8fa}
.approve .label{margin:0;color:#59636e;font-size:.8rem;text-transform:uppercase;letter-spacing:.04em}
.approve .what{margin:0;font-size:1.15rem;font-weight:600}
.approve dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.4rem 0 0}
.approve dt{color:#59636e}
.approve dd{margin:0;font-weight:600;overflow-wrap:anywhere;font-variant-numeric:tabular-nums}
.meta{color:#59636e;font-size:.8rem}
code{overflow-wrap:anywhere}
form{margin:1rem 0}
label{display:block;margin:.5rem 0 .25rem}
input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}
input#code{font-size:1.3rem;letter-spacing:.3em;font-variant-numeric:tabular-nums}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.75rem}
button{font:inherit;padding:.5rem 1.1rem;border-radius:6px;cursor:pointer}
.primary{background:#0b5cad;color:#fff;border:1px solid #0b5cad;font-weight:600}
.secondary{background:#fff;color:#1f2328;border:1px solid #d0d7de}
.link{background:none;border:0;padding:0;color:#0b5cad;text-decoration:underline;font-size:.9rem}
.error{color:#d1242f}
.dev{background:#fff8c5;padding:.5rem;border-radius:4px;font-size:.9rem}
.note{color:#59636e;font-size:.8rem;margin-top:2rem}
</style>
</head>
<body{{if .Mode}} class="popup"{{end}}>
<main>
<h1>{{.Title}}</h1>
{{if and .What .Active}}<section class="approve" id="approve">
<p class="label">You are approving</p>
<p class="what" id="what">{{.What}}</p>
{{with .Details}}<dl id="details">{{range .}}<dt>{{.Name}}</dt><dd>{{.Value}}</dd>{{end}}</dl>{{end}}
</section>{{end}}
{{with .Error}}<p class="error" id="error" role="alert">{{.}}</p>{{end}}
{{if eq .Step "choose"}}
<form method="post" action="/challenge/send">
{{template "fields" .}}
{{if and .Enrol .EmailFixed}}<p>None of your verification methods is accepted for this action. Verify your email address to set up one that is.</p>
<label for="email">Email address</label>
<input id="email" name="email" type="email" value="{{.Email}}" readonly>
{{else if .Enrol}}<p>Set up verification to continue: first, verify your email address.</p>
<label for="email">Email address</label>
<input id="email" name="email" type="email" value="{{.Email}}" autocomplete="email" required>
{{else}}<p>Choose how to verify it's you.</p>{{end}}
<div class="actions">
{{if .Passkey}}<button class="primary" id="passkey" type="button">{{index .Labels "PASSKEY"}}</button>
{{end}}{{range .Methods}}<button class="primary" type="submit" name="method" value="{{.Code}}">{{.Label}}</button>
{{end}}<button class="secondary" id="cancel" type="submit" formaction="/challenge/cancel" formnovalidate>Cancel</button>
</div>
{{if .Passkey}}<p class="error" id="passkey-error" role="alert"></p>{{end}}
</form>
{{else if eq .Step "enrol"}}
<p>Your email address <span id="to">{{.Email}}</span> is verified. Choose how you will verify it's you:</p>
<form method="post" action="/challenge/enrol">
{{template "fields" .}}
<div class="actions">
{{range .Methods}}<button class="primary" type="submit" name="method" value="{{.Code}}">{{.Label}}</button>
{{end}}<button class="secondary" id="cancel" type="submit" formaction="/challenge/cancel" formnovalidate>Cancel</button>
</div>
</form>
{{else if eq .Step "totp-setup"}}
<p>Scan this QR code with your authenticator app, or enter the secret by hand, then type the 6-digit code it shows.</p>
{{with .TOTPQR}}<p><img id="totp-qr" src="{{.}}" width="200" height="200" alt="QR code of the authenticator app secret"></p>{{end}}
<p>Secret: <code id="totp-secret">{{.TOTPSecret}}</code></p>
{{template "appcode" .}}
{{template "repick" .}}
{{else if eq .Step "passkey"}}
<p>Create a passkey for <span id="to">{{.Email}}</span> on this device: your browser asks you to confirm with your fingerprint, face, PIN or security key.</p>
<form method="post" action="/challenge/cancel">
{{template "fields" .}}
<div class="actions">
<button class="primary" id="passkey" type="button" data-register="true">Create a passkey</button>
<button class="secondary" id="cancel" type="submit" formnovalidate>Cancel</button>
</div>
<p class="error" id="passkey-error" role="alert"></p>
</form>
{{template "repick" .}}
{{else if and (eq .Step "code") (eq .Method "AUTHENTICATOR_APP")}}
<p>Open your authenticator app and enter the 6-digit code it shows.</p>
{{template "appcode" .}}
{{else if eq .Step "code"}}
<p>We sent a 6-digit code by {{.Channel}}{{with .To}} to <span id="to">{{.}}</span>{{end}}.</p>
{{with .DevCode}}<p class="dev">Dev mode: the code is <strong id="dev-code">{{.}}</strong>, filled in below.</p>{{end}}
<form method="post" action="/challenge/verify">
{{template "fields" .}}
<label for="code">Code ({{.Attempts}} attempts left)</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required autofocus{{with .DevCode}} value="{{.}}"{{end}}>
<div class="actions">
<button class="primary" id="verify" type="submit">Verify</button>
<button class="secondary" id="cancel" type="submit" formaction="/challenge/cancel" formnovalidate>Cancel</button>
</div>
</form>
<form method="post" action="/challenge/send">
{{template "fields" .}}
<input type="hidden" name="method" value="{{.Method}}">
{{if .Enrol}}<input type="hidden" name="email" value="{{.Email}}">{{end}}
<button class="link" id="resend" type="submit">Send a new code</button>
</form>
{{else if eq .Step "status"}}
<p id="status">{{.Message}}</p>
<form method="post" action="/challenge/cancel">
{{template "fields" .}}
<div class="actions"><button class="primary" id="continue" type="submit">Continue</button></div>
</form>
{{else if and (eq .Step "done") .Close}}
<p id="status">Finished with state <code id="state">{{.State}}</code>. This window closes by itself.</p>
{{else if eq .Step "done"}}
<p>Finished with state <code id="state">{{.State}}</code>. There is no redirect URL; hand this token to your application:</p>
<p><code id="token">{{.DoneToken}}</code></p>
{{else if eq .Step "left"}}
<p id="status">You left without verifying: nothing was approved. {{if .Close}}This window closes by itself.{{else}}You can close this window.{{end}}</p>
{{else}}
<p id="status">{{.Message}}</p>
{{end}}
{{if .Action}}<p class="meta">Action <code id="action">{{.Action}}</code> for user <code id="user">{{.UserID}}</code></p>{{end}}
<p class="note">Authsignal emulator — for development and tests only.</p>
</main>
{{if and .Nonce .Passkey}}<script nonce="{{.Nonce}}">
(function () {
  "use strict";
  var btn = document.getElementById("passkey");
  var out = document.getElementById("passkey-error");
  if (!btn) { return; }
  var form = btn.form;
  function body(extra) {
    var p = new URLSearchParams();
    ["token", "csrf", "mode"].forEach(function (n) { var el = form.elements[n]; if (el) { p.set(n, el.value); } });
    Object.keys(extra).forEach(function (k) { p.set(k, extra[k]); });
    return p;
  }
  function send(path, extra) {
    return fetch(path, {method: "POST", body: body(extra), credentials: "same-origin"}).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) { throw new Error(j.error || ("status " + r.status)); }
        return j;
      });
    });
  }
  btn.addEventListener("click", function () {
    var register = btn.getAttribute("data-register") === "true";
    out.textContent = "";
    btn.disabled = true;
    send("/challenge/passkey/begin", {}).then(function (opts) {
      if (register) {
        return navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(opts.publicKey)});
      }
      return navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(opts.publicKey)});
    }).then(function (cred) {
      return send("/challenge/passkey/finish", {credential: JSON.stringify(cred.toJSON())});
    }).then(function (j) {
      if (j.location) { window.location.assign(j.location); }
    }).catch(function (e) {
      out.textContent = (e && e.message) || String(e);
      btn.disabled = false;
    });
  });
})();
</script>{{end}}
{{if and .Nonce .SDK}}<script nonce="{{.Nonce}}">
(function () {
  "use strict";
  var origins = {{.Origins}};
  var target = window.parent !== window ? window.parent : window.opener;
  function post(msg) {
    if (!target) { return; }
    origins.forEach(function (o) { try { target.postMessage(msg, o); } catch (e) {} });
  }
  function resize() { post({height: Math.ceil(document.documentElement.getBoundingClientRect().height)}); }
  post({{.Ready}});
  resize();
  if (window.ResizeObserver) { new ResizeObserver(resize).observe(document.documentElement); }
  {{with .Close}}post({{.}});{{end}}
})();
</script>{{end}}
</body>
</html>
{{define "appcode"}}<form method="post" action="/challenge/verify">
{{template "fields" .}}
<label for="code">Code ({{.Attempts}} attempts left)</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required autofocus>
<div class="actions">
<button class="primary" id="verify" type="submit">Verify</button>
<button class="secondary" id="cancel" type="submit" formaction="/challenge/cancel" formnovalidate>Cancel</button>
</div>
</form>{{end}}
{{define "repick"}}{{with .Methods}}<form method="post" action="/challenge/enrol">
{{template "fields" $}}
<p>Or set up instead: {{range .}}<button class="link" type="submit" name="method" value="{{.Code}}" formnovalidate>{{.Label}}</button> {{end}}</p>
</form>{{end}}{{end}}
{{define "fields"}}<input type="hidden" name="token" value="{{.Token}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{with .Mode}}<input type="hidden" name="mode" value="{{.}}">
{{end}}{{end}}`))

// Labels are the page's button labels by method.
func (pageData) Labels() map[string]string { return methodLabels }

// Ready is the AUTHSIGNAL_READY message the page's script posts.
func (pageData) Ready() string { return readyMessage }
