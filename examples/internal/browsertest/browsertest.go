// Package browsertest drives headless Chromium for the examples' tests:
// it starts the browser, and works in the pages of Authsignal's pre-built
// UI (here the emulator's hosted page) that the browser SDK opens in a
// cross-site iframe or in a window.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Chromium starts headless Chromium with a fresh profile that blocks
// third-party cookies, and returns its context, which ends with the test.
// Without a Chromium the test is skipped, unless CI=true, where that is a
// failure.
func Chromium(t *testing.T) context.Context {
	t.Helper()
	path := FindChromium()
	if path == "" {
		msg := "Chromium not found: install it (Debian/Ubuntu: apt-get install -y chromium) or set CHROMIUM to its path"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("test-third-party-cookie-phaseout", true), // block third-party cookies, as browsers now do
		// A cross-site iframe stays in its page's process (see Challenge).
		chromedp.Flag("disable-features", "SitePerProcess,IsolateOrigins"),
		chromedp.Flag("disable-site-isolation-trials", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 900),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser on the untimed context: a timeout on the first
	// run would bound the browser's life.
	_, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err, "starting %s", path)
	return ctx
}

// FindChromium returns $CHROMIUM, or the first Chromium or Chrome on the
// PATH, or "".
func FindChromium() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Challenge works in the challenge page the SDK opens from a tab: in popup
// mode an iframe of the tab ("iframe"), in window mode a new window
// ("page"). Each step runs a script there and returns a string; a click
// that navigates is deferred so that the script returns first.
//
// Neither page is given a chromedp context of its own: chromedp does not
// follow an attached iframe through a navigation, and attaching a chromedp
// context to a page that is still loading races inside chromedp. Both are
// driven through the tab's own session instead. The iframe is reached
// through the tab's frame tree and an isolated world; Chromium therefore
// runs without site isolation (see Chromium): a cross-site iframe stays in
// the tab's process, which changes nothing the web platform sees (origins,
// sites, cookies, CSP, postMessage). The window, another target, gets a
// raw CDP session carried by the tab's session (see window), attached once
// the window exists; its page is awaited by evaluating in it.
type Challenge struct {
	tab    context.Context
	origin string
	kind   string
	opened <-chan target.ID // the window's target, once the tab opens it
	winID  target.ID
	win    *window
}

// NewChallenge prepares to work in the challenge page at origin that the
// next action in tab opens, kind "iframe" or "page". Call it before that
// action.
func NewChallenge(t *testing.T, tab context.Context, origin, kind string) *Challenge {
	t.Helper()
	c := &Challenge{tab: tab, origin: origin, kind: kind}
	if kind == "page" {
		ctx, cancel := context.WithCancel(tab)
		t.Cleanup(cancel)
		c.opened = chromedp.WaitNewTarget(ctx, func(i *target.Info) bool { return i.Type == "page" })
		t.Cleanup(func() {
			if c.win == nil {
				return
			}
			ctx, cancel := context.WithTimeout(tab, 5*time.Second)
			defer cancel()
			_ = c.win.detach(ctx) // the window may be closed already
		})
	}
	return c
}

// Eval runs expr in the challenge page and returns its string value, or ""
// when the page is not open (yet, or any more).
func (c *Challenge) Eval(expr string) (string, error) {
	ctx, cancel := context.WithTimeout(c.tab, 5*time.Second)
	defer cancel()
	if c.kind == "page" {
		return c.evalWindow(ctx, expr)
	}
	tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		return "", err
	}
	frame := findFrame(tree.FrameTree, c.origin+"/")
	if frame == nil {
		return "", nil
	}
	world, err := chromedp.Call(ctx, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: frame.ID, WorldName: "browsertest"})
	if err != nil {
		return "", err
	}
	res, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{
		Expression: expr, ContextID: world.ExecutionContextID, ReturnByValue: ptr(true)})
	return evaluated(expr, res, err)
}

// evaluated returns the string value of an evaluation of expr.
func evaluated(expr string, res runtime.EvaluateResult, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if res.ExceptionDetails != nil {
		return "", fmt.Errorf("browsertest: %s: %s", expr, res.ExceptionDetails.Text)
	}
	var v string
	if res.Result != nil {
		_ = json.Unmarshal(res.Result.Value, &v)
	}
	return v, nil
}

// evalWindow evaluates expr in the window, once it shows a page of origin.
// The window is attached once, when the tab has opened it, whether or not
// it has loaded: a session follows its page through navigations, and
// evaluating is how this waits for the page.
func (c *Challenge) evalWindow(ctx context.Context, expr string) (string, error) {
	if c.win == nil {
		if c.winID == "" {
			select {
			case c.winID = <-c.opened:
			default:
				return "", nil
			}
		}
		win, err := attachWindow(ctx, chromedp.FromContext(c.tab).Target, c.winID)
		if err != nil {
			return "", err
		}
		c.win = win
	}
	res, err := callWindow(ctx, c.win, runtime.Evaluate, runtime.EvaluateParams{
		Expression:    `location.href.indexOf(` + jsString(c.origin+"/") + `) === 0 ? (function () { return ` + expr + `; })() : ''`,
		ReturnByValue: ptr(true)})
	return evaluated(expr, res, err)
}

func findFrame(t *page.FrameTree, prefix string) *cdp.Frame {
	if t == nil {
		return nil
	}
	if t.Frame != nil && t.Frame.ParentID != "" && strings.HasPrefix(t.Frame.URL, prefix) {
		return t.Frame
	}
	for _, child := range t.ChildFrames {
		if f := findFrame(child, prefix); f != nil {
			return f
		}
	}
	return nil
}

// Wait runs expr in the challenge page until it returns a non-empty
// string, and returns that.
func (c *Challenge) Wait(t *testing.T, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.tab, 20*time.Second)
	defer cancel()
	for {
		if v, err := c.Eval(expr); err == nil && v != "" {
			return v
		}
		_, err := chromedp.Run(ctx, chromedp.Sleep(50*time.Millisecond))
		require.NoError(t, err, "waiting in the challenge page for %s", expr)
	}
}

// Click presses the element sel of the challenge page and, unless last,
// waits for the page it leads to. A last click ends the challenge: the SDK
// closes the page.
func (c *Challenge) Click(t *testing.T, sel string, last bool) {
	t.Helper()
	q := `document.querySelector(` + jsString(sel) + `)`
	c.Wait(t, q+` ? 'ok' : ''`)
	c.Wait(t, `(document.documentElement.dataset.browsertestOld = '1') && setTimeout(function () { `+q+`.click(); }, 50) && 'ok'`)
	if !last {
		c.Wait(t, `!document.documentElement.dataset.browsertestOld && document.readyState === 'complete' ? 'ok' : ''`)
	}
}

// Fill sets the value of the input sel.
func (c *Challenge) Fill(t *testing.T, sel, value string) {
	t.Helper()
	c.Wait(t, `(function (el) { if (!el) { return ''; } el.value = `+jsString(value)+`; return 'ok'; })(document.querySelector(`+jsString(sel)+`))`)
}

func jsString(s string) string {
	return `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + `'`
}

func ptr[T any](v T) *T { return &v }
