package emulator

import "html/template"

// pageData is everything the page template shows; html/template escapes it.
type pageData struct {
	Title     string
	Step      string // invalid, choose, code, status, done
	UserID    string
	Action    string
	Token     string // the challenge token, carried in the forms
	CSRF      string
	Mode      string // "popup" or "window" (the SDK's launch modes), "" for redirect mode
	Error     string
	Enrol     bool
	Email     string
	Methods   []methodChoice
	Method    string
	Channel   string
	To        string
	DevCode   string
	Attempts  int // attempts left
	State     string
	Message   string
	DoneToken string
	Active    bool

	// Popup and window mode: the script's nonce, the origins it posts to,
	// and the AUTHSIGNAL_CLOSE_POPUP message it posts, if any.
	Nonce   string
	Origins []string
	Close   string
}

type methodChoice struct{ Code, Label string }

var methodLabels = map[string]string{MethodEmailOTP: "Email me a code", MethodSMS: "Text me a code"}

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
h1{font-size:1.4rem;margin:0 0 .5rem}
.meta{color:#59636e;font-size:.9rem}
code{overflow-wrap:anywhere}
form{margin:1rem 0}
label{display:block;margin:.5rem 0 .25rem}
input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}
button{font:inherit;padding:.4rem 1rem;margin:.25rem .25rem .25rem 0;cursor:pointer}
.error{color:#d1242f}
.dev{background:#fff8c5;padding:.5rem}
.note{color:#59636e;font-size:.8rem;margin-top:2rem}
</style>
</head>
<body{{if .Mode}} class="popup"{{end}}>
<main>
<h1>{{.Title}}</h1>
{{if .Action}}<p class="meta">Action <code id="action">{{.Action}}</code> for user <code id="user">{{.UserID}}</code></p>{{end}}
{{with .Error}}<p class="error" id="error" role="alert">{{.}}</p>{{end}}
{{if eq .Step "choose"}}
<form method="post" action="/challenge/send">
{{template "fields" .}}
{{if .Enrol}}<p>Set up verification by email to continue.</p>
<label for="email">Email address</label>
<input id="email" name="email" type="email" value="{{.Email}}" autocomplete="email" required>
{{else}}<p>Choose how to verify it's you.</p>{{end}}
{{range .Methods}}<button type="submit" name="method" value="{{.Code}}">{{.Label}}</button>
{{end}}</form>
{{else if eq .Step "code"}}
<p>We sent a 6-digit code by {{.Channel}}{{with .To}} to <span id="to">{{.}}</span>{{end}}.</p>
{{with .DevCode}}<p class="dev">Dev mode — your code is <strong id="dev-code">{{.}}</strong></p>{{end}}
<form method="post" action="/challenge/verify">
{{template "fields" .}}
<label for="code">Code ({{.Attempts}} attempts left)</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required autofocus>
<button id="verify" type="submit">Verify</button>
</form>
<form method="post" action="/challenge/send">
{{template "fields" .}}
<input type="hidden" name="method" value="{{.Method}}">
{{if .Enrol}}<input type="hidden" name="email" value="{{.Email}}">{{end}}
<button id="resend" type="submit">Send a new code</button>
</form>
{{else if eq .Step "status"}}
<p id="status">{{.Message}}</p>
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
{{if or (eq .Step "choose") (eq .Step "code") (eq .Step "status")}}
<form method="post" action="/challenge/cancel">
{{template "fields" .}}
{{if .Active}}<button id="cancel" type="submit">Cancel</button>{{else}}<button id="continue" type="submit">Continue</button>{{end}}
</form>
{{end}}
<p class="note">Authsignal emulator — for development and tests only.</p>
</main>
{{if .Nonce}}<script nonce="{{.Nonce}}">
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
{{define "fields"}}<input type="hidden" name="token" value="{{.Token}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{with .Mode}}<input type="hidden" name="mode" value="{{.}}">
{{end}}{{end}}`))

// Ready is the AUTHSIGNAL_READY message the page's script posts.
func (pageData) Ready() string { return readyMessage }
