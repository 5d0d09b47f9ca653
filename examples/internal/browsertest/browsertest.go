// Package browsertest drives headless Chromium for the examples' tests:
// it starts the browser, and works in the pages of Authsignal's pre-built
// UI (here the emulator's hosted page) that the browser SDK opens in a
// cross-site iframe or in a window.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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

// Challenge works in a challenge page the SDK opens: Kind "iframe" for
// popup mode (a cross-site iframe is a target of its own under site
// isolation) or "page" for window mode. chromedp does not follow such a
// target through a navigation, so each step attaches afresh and runs a
// script there; a click that navigates is deferred so that the script
// returns first.
type Challenge struct {
	Browser context.Context
	Origin  string // the challenge page's origin, e.g. the emulator's URL
	Kind    string // "iframe" or "page"

	old map[target.ID]bool
}

// NewChallenge notes the targets open now, which are not the challenge
// page: call it before the action that opens the challenge.
func NewChallenge(t *testing.T, browser context.Context, origin, kind string) *Challenge {
	t.Helper()
	c := &Challenge{Browser: browser, Origin: origin, Kind: kind, old: map[target.ID]bool{}}
	infos, err := chromedp.Targets(browser)
	require.NoError(t, err)
	for _, i := range infos {
		c.old[i.TargetID] = true
	}
	return c
}

// Eval runs expr in the challenge page and returns its string value, or ""
// when the page is not open.
func (c *Challenge) Eval(expr string) (string, error) {
	infos, err := chromedp.Targets(c.Browser)
	if err != nil {
		return "", err
	}
	for _, i := range infos {
		if i.Type != c.Kind || c.old[i.TargetID] || !strings.HasPrefix(i.URL, c.Origin+"/") {
			continue
		}
		// The attachment ends with the browser: cancelling it would close
		// the target, and with an iframe's, the page it is in.
		page, _ := chromedp.NewContext(c.Browser, chromedp.WithTargetID(i.TargetID))
		ctx, cancel := context.WithTimeout(page, 5*time.Second)
		defer cancel()
		return chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	}
	return "", nil
}

// Wait runs expr in the challenge page until it returns a non-empty
// string, and returns that.
func (c *Challenge) Wait(t *testing.T, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.Browser, 20*time.Second)
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
	c.Wait(t, `window.browsertestOld = true; setTimeout(function () { `+q+`.click(); }, 50); 'ok'`)
	if !last {
		c.Wait(t, `!window.browsertestOld && document.readyState === 'complete' ? 'ok' : ''`)
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
