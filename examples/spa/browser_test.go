package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSDK drives the real @authsignal/browser (the vendored 1.16.0) in
// headless Chromium against the guard and the emulator, on two sites
// (127.0.0.1 and localhost) with third-party cookies blocked: popup mode
// (a cross-site iframe) and window mode, finished, closed and failed.
func TestSDK(t *testing.T) {
	browser := newBrowser(t)
	s := startServers(t)
	emu := s.Emulator

	run := func(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		require.NoError(t, chromedp.Do(ctx, actions...))
	}
	text := func(t *testing.T, sel string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err)
		return v
	}
	// launch fills the form, presses the mode's button and returns the
	// challenge page's browser target: the SDK's iframe or its window.
	// The challenge page runs in a target of its own: the SDK's cross-site
	// iframe (site isolation) or its window. chromedp does not follow such
	// a target through a navigation, so each step attaches afresh and runs
	// a script there; a click that navigates is deferred, so that the
	// script returns first.
	old := map[target.ID]bool{}
	var detachAll []context.CancelFunc
	defer func() { // cancelling closes the target: only once the test is over
		for _, d := range detachAll {
			d()
		}
	}()
	inChallenge := func(kind, expr string) (string, error) {
		infos, err := chromedp.Targets(browser)
		if err != nil {
			return "", err
		}
		for _, i := range infos {
			if i.Type != kind || old[i.TargetID] || !strings.HasPrefix(i.URL, s.EmulatorURL+"/challenge") {
				continue
			}
			page, detach := chromedp.NewContext(browser, chromedp.WithTargetID(i.TargetID))
			detachAll = append(detachAll, detach)
			ctx, cancel := context.WithTimeout(page, 5*time.Second)
			defer cancel()
			return chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		}
		return "", nil
	}
	// waitChallenge runs expr in the challenge page until it returns a
	// non-empty string, and returns that.
	waitChallenge := func(t *testing.T, kind, expr string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 20*time.Second)
		defer cancel()
		for {
			if v, err := inChallenge(kind, expr); err == nil && v != "" {
				return v
			}
			_, err := chromedp.Run(ctx, chromedp.Sleep(50*time.Millisecond))
			require.NoError(t, err, "waiting in the challenge page for %s", expr)
		}
	}
	// click presses a button of the challenge page and, unless last, waits
	// for the page it leads to.
	click := func(t *testing.T, kind, sel string, last bool) {
		t.Helper()
		waitChallenge(t, kind, `document.querySelector('`+sel+`') ? 'ok' : ''`)
		waitChallenge(t, kind, `window.stepupOld = true; setTimeout(function () { document.querySelector('`+sel+`').click(); }, 50); 'ok'`)
		if !last {
			waitChallenge(t, kind, `!window.stepupOld && document.readyState === 'complete' ? 'ok' : ''`)
		}
	}
	sendCode := func(t *testing.T, kind string) string {
		t.Helper()
		click(t, kind, `button[name=method][value=EMAIL_OTP]`, false)
		code, ok := emu.LastCode("alice")
		require.True(t, ok)
		return code
	}
	enterCode := func(t *testing.T, kind, code string, last bool) {
		t.Helper()
		waitChallenge(t, kind, `document.querySelector('#code').value = '`+code+`'; 'ok'`)
		click(t, kind, `#verify`, last)
	}
	launch := func(t *testing.T, amount, mode string) {
		t.Helper()
		infos, err := chromedp.Targets(browser)
		require.NoError(t, err)
		for _, i := range infos {
			old[i.TargetID] = true
		}
		// A new guard session each time: a session may open five
		// challenges per ParkTTL, and the closed ones count.
		_, err = chromedp.Call(browser, network.ClearBrowserCookies, cdp.Empty{})
		require.NoError(t, err)
		run(t, browser,
			chromedp.Navigate(s.AppURL+"/"), chromedp.WaitVisible(chromedp.ID("amount")),
			chromedp.SetValue(chromedp.ID("amount"), amount), chromedp.Click(chromedp.ID(mode)))
	}
	waitResult := func(t *testing.T) string {
		t.Helper()
		run(t, browser, chromedp.WaitVisible(chromedp.ID("result")))
		return text(t, "#result")
	}

	t.Run("popup: verified, the request runs once", func(t *testing.T) {
		before := s.App.Transfers.Load()
		launch(t, "500", "popup")
		run(t, browser, chromedp.WaitVisible(chromedp.ID("__authsignal-popup-iframe")))
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		position, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`getComputedStyle(document.getElementById('__authsignal-popup-container')).position`))
		require.NoError(t, err)
		assert.Equal(t, "fixed", position, "the SDK's own style applies under the page's CSP (StyleHash)")
		allow, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("__authsignal-popup-iframe"), "allow"))
		require.NoError(t, err)
		assert.Contains(t, allow.Value, "publickey-credentials-get *")

		assert.Equal(t, "no cookie", waitChallenge(t, "iframe", `document.cookie = 'probe=1; path=/'; document.cookie || 'no cookie'`),
			"the cross-site iframe keeps no cookie, and the challenge still works")
		enterCode(t, "iframe", sendCode(t, "iframe"), true)

		assert.Equal(t, "200 Sent 500.00 to bob after verification (token).", waitResult(t))
		run(t, browser, chromedp.WaitNotPresent(chromedp.ID("__authsignal-popup-container")))
		assert.Equal(t, before+1, s.App.Transfers.Load())
		assert.Equal(t, "CHALLENGE_SUCCEEDED", emu.Tracked()[len(emu.Tracked())-1].State)
	})

	t.Run("popup: closed by the user, nothing runs", func(t *testing.T) {
		before := s.App.Transfers.Load()
		launch(t, "600", "popup")
		waitChallenge(t, "iframe", `document.querySelector('#cancel') ? 'ok' : ''`)
		run(t, browser, chromedp.WaitVisible(chromedp.ID("__authsignal-popup-iframe")),
			chromedp.MouseClickXY(5, 5)) // the backdrop
		assert.Equal(t, "You closed the verification: nothing was sent.", waitResult(t))
		assert.Equal(t, before, s.App.Transfers.Load())
	})

	t.Run("popup: cancel on the page, nothing runs", func(t *testing.T) {
		before := s.App.Transfers.Load()
		launch(t, "650", "popup")
		click(t, "iframe", "#cancel", true)
		assert.Equal(t, "You closed the verification: nothing was sent.", waitResult(t))
		assert.Equal(t, before, s.App.Transfers.Load())
	})

	t.Run("popup: a failed challenge, the guard refuses", func(t *testing.T) {
		before := s.App.Transfers.Load()
		launch(t, "700", "popup")
		code := sendCode(t, "iframe")
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		enterCode(t, "iframe", wrong, false)
		enterCode(t, "iframe", wrong, false)
		enterCode(t, "iframe", wrong, true)
		result := waitResult(t)
		assert.True(t, strings.HasPrefix(result, "403 step_up_failed: "), result)
		assert.Equal(t, before, s.App.Transfers.Load(), "nothing ran")
		assert.Equal(t, "CHALLENGE_FAILED", emu.Tracked()[len(emu.Tracked())-1].State)
	})

	t.Run("window: verified, the request runs once", func(t *testing.T) {
		before := s.App.Transfers.Load()
		launch(t, "800", "window")
		enterCode(t, "page", sendCode(t, "page"), true)
		assert.Equal(t, "200 Sent 800.00 to bob after verification (token).", waitResult(t))
		assert.Equal(t, before+1, s.App.Transfers.Load())
	})

	t.Run("window: cancel on the page, nothing runs", func(t *testing.T) {
		before := s.App.Transfers.Load()
		launch(t, "900", "window")
		click(t, "page", "#cancel", true)
		assert.Equal(t, "You closed the verification: nothing was sent.", waitResult(t))
		assert.Equal(t, before, s.App.Transfers.Load())
	})

	t.Run("no challenge under the threshold", func(t *testing.T) {
		before := s.App.Transfers.Load()
		run(t, browser, chromedp.Navigate(s.AppURL+"/"), chromedp.WaitVisible(chromedp.ID("amount")),
			chromedp.SetValue(chromedp.ID("amount"), "50"), chromedp.Click(chromedp.ID("popup")))
		assert.Equal(t, "200 Sent 50.00 to bob without a challenge.", waitResult(t))
		assert.Equal(t, before+1, s.App.Transfers.Load())
	})
}

func startServers(t *testing.T) *servers {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	emuLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s, err := start(ln, emuLn, t.Logf)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// newBrowser starts headless Chromium with a fresh profile that blocks
// third-party cookies. Without a Chromium the test is skipped, unless
// CI=true, where that is a failure.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := findChromium()
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
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("test-third-party-cookie-phaseout", true), // block third-party cookies
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 900),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	_, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err, "starting %s", path)
	return ctx
}

func findChromium() string {
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
