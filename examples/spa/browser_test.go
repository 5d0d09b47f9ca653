package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/examples/internal/browsertest"
)

// TestSDK drives the real @authsignal/browser (the vendored 1.16.0) in
// headless Chromium against the guard and the emulator, on two sites
// (127.0.0.1 and localhost) with third-party cookies blocked: popup mode
// (a cross-site iframe) and window mode, finished, closed and failed.
func TestSDK(t *testing.T) {
	browser := browsertest.Chromium(t)
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
	// launch submits the form with the mode's button and returns the
	// challenge page the SDK opens.
	launch := func(t *testing.T, amount, mode string) *browsertest.Challenge {
		t.Helper()
		kind := map[string]string{"popup": "iframe", "window": "page"}[mode]
		c := browsertest.NewChallenge(t, browser, s.EmulatorURL, kind)
		// A new guard session each time: a session may open five
		// challenges per ParkTTL, and the closed ones count.
		_, err := chromedp.Call(browser, network.ClearBrowserCookies, cdp.Empty{})
		require.NoError(t, err)
		run(t, browser,
			chromedp.Navigate(s.AppURL+"/"), chromedp.WaitVisible(chromedp.ID("amount")),
			chromedp.SetValue(chromedp.ID("amount"), amount), chromedp.Click(chromedp.ID(mode)))
		return c
	}
	// sentCode is the code the page sent when it opened (the emulator's
	// dev mode, for a user with one method), as the page filled it in.
	sentCode := func(t *testing.T, c *browsertest.Challenge) string {
		t.Helper()
		filled := c.Wait(t, `(function (el) { return el ? el.value : ''; })(document.querySelector('#code'))`)
		code, ok := emu.LastCode("alice")
		require.True(t, ok)
		require.Equal(t, code, filled, "dev mode sends the code and fills it in")
		return code
	}
	enterCode := func(t *testing.T, c *browsertest.Challenge, code string, last bool) {
		t.Helper()
		c.Fill(t, "#code", code)
		c.Click(t, "#verify", last)
	}
	waitResult := func(t *testing.T) string {
		t.Helper()
		run(t, browser, chromedp.WaitVisible(chromedp.ID("result")))
		return text(t, "#result")
	}

	t.Run("popup: verified, the request runs once", func(t *testing.T) {
		before := s.App.Transfers.Load()
		frame := launch(t, "500", "popup")
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

		assert.Equal(t, "no cookie", frame.Wait(t, `document.cookie = 'probe=1; path=/'; document.cookie || 'no cookie'`),
			"the cross-site iframe keeps no cookie, and the challenge still works")
		enterCode(t, frame, sentCode(t, frame), true)

		assert.Equal(t, "200 Sent 500.00 to bob after verification (token).", waitResult(t))
		run(t, browser, chromedp.WaitNotPresent(chromedp.ID("__authsignal-popup-container")))
		assert.Equal(t, before+1, s.App.Transfers.Load())
		assert.Equal(t, "CHALLENGE_SUCCEEDED", emu.Tracked()[len(emu.Tracked())-1].State)
	})

	t.Run("popup: closed by the user, nothing runs", func(t *testing.T) {
		before := s.App.Transfers.Load()
		frame := launch(t, "600", "popup")
		frame.Wait(t, `document.querySelector('#cancel') ? 'ok' : ''`)
		run(t, browser, chromedp.WaitVisible(chromedp.ID("__authsignal-popup-iframe")),
			chromedp.MouseClickXY(5, 5)) // the backdrop
		assert.Equal(t, "You closed the verification: nothing was sent.", waitResult(t))
		assert.Equal(t, before, s.App.Transfers.Load())
	})

	t.Run("popup: cancel on the page, nothing runs", func(t *testing.T) {
		before := s.App.Transfers.Load()
		launch(t, "650", "popup").Click(t, "#cancel", true)
		assert.Equal(t, "You closed the verification: nothing was sent.", waitResult(t))
		assert.Equal(t, before, s.App.Transfers.Load())
	})

	t.Run("popup: a failed challenge, the guard refuses", func(t *testing.T) {
		before := s.App.Transfers.Load()
		frame := launch(t, "700", "popup")
		code := sentCode(t, frame)
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		enterCode(t, frame, wrong, false)
		enterCode(t, frame, wrong, false)
		enterCode(t, frame, wrong, true)
		result := waitResult(t)
		assert.True(t, strings.HasPrefix(result, "403 step_up_failed: "), result)
		assert.Equal(t, before, s.App.Transfers.Load(), "nothing ran")
		assert.Equal(t, "CHALLENGE_FAILED", emu.Tracked()[len(emu.Tracked())-1].State)
	})

	t.Run("window: verified, the request runs once", func(t *testing.T) {
		before := s.App.Transfers.Load()
		win := launch(t, "800", "window")
		enterCode(t, win, sentCode(t, win), true)
		assert.Equal(t, "200 Sent 800.00 to bob after verification (token).", waitResult(t))
		assert.Equal(t, before+1, s.App.Transfers.Load())
	})

	t.Run("window: cancel on the page, nothing runs", func(t *testing.T) {
		before := s.App.Transfers.Load()
		launch(t, "900", "window").Click(t, "#cancel", true)
		assert.Equal(t, "You closed the verification: nothing was sent.", waitResult(t))
		assert.Equal(t, before, s.App.Transfers.Load())
	})

	t.Run("sign-in: the password, the challenge in the popup, then the session", func(t *testing.T) {
		before := s.App.SignIns.Load()
		_, err := chromedp.Call(browser, network.ClearBrowserCookies, cdp.Empty{})
		require.NoError(t, err)
		frame := browsertest.NewChallenge(t, browser, s.EmulatorURL, "iframe")
		run(t, browser, chromedp.Navigate(s.AppURL+"/"), chromedp.WaitVisible(chromedp.ID("signin-popup")),
			chromedp.Click(chromedp.ID("signin-popup")))
		assert.Equal(t, before, s.App.SignIns.Load(), "nobody signed in before the second factor")
		enterCode(t, frame, sentCode(t, frame), true)
		assert.Equal(t, "204 Signed in as alice.", waitResult(t))
		assert.Equal(t, before+1, s.App.SignIns.Load())
		assert.Equal(t, "signIn", emu.Tracked()[len(emu.Tracked())-1].Action)
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
