package main

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/examples/internal/browsertest"
)

// TestBrowser runs the demo's flows in headless Chromium: the user clicks,
// the emulator's hosted page challenges, the OTP comes from the emulator's
// Go API, and the assertions read what the pages show.
func TestBrowser(t *testing.T) {
	browser := browsertest.Chromium(t)
	// The bank on 127.0.0.1, its emulator on localhost (where browsers
	// allow passkeys): two sites, as the bank and Authsignal are in
	// production.
	tb := startBank(t)
	require.True(t, strings.HasPrefix(tb.app.EmulatorURL(), "http://localhost:"), tb.app.EmulatorURL())
	tb.url = tb.app.cfg.PublicURL
	emu := tb.app.Emulator()
	shots := screenshotDir(t)

	// The callback URLs the browser visits, to replay a "refresh" later.
	var mu sync.Mutex
	var callbacks []string
	require.NoError(t, chromedp.Listen(browser, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Type == network.ResourceTypeDocument &&
			strings.HasPrefix(e.Request.URL, tb.url+callbackPath) {
			mu.Lock()
			callbacks = append(callbacks, e.Request.URL)
			mu.Unlock()
		}
	}))

	step := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		browserStep(t, browser, steps...)
	}
	text := func(t *testing.T, id string) string { t.Helper(); return browserText(t, browser, id) }
	location := func(t *testing.T) string { t.Helper(); return browserLocation(t, browser) }
	// balance reads the dashboard, and checks it against the bank's books.
	balance := func(t *testing.T) int64 {
		t.Helper()
		step(t, chromedp.Navigate(tb.url+"/dashboard"), chromedp.WaitVisible(chromedp.ID("balance")))
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		attr, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("balance"), "data-cents"))
		require.NoError(t, err)
		cents, err := strconv.ParseInt(attr.Value, 10, 64)
		require.NoError(t, err)
		acct, _ := tb.app.bank.account("alice")
		require.Equal(t, acct.Balance, cents)
		return cents
	}
	transfer := func(t *testing.T, amount, to string) {
		t.Helper()
		step(t,
			chromedp.Navigate(tb.url+"/dashboard"),
			chromedp.SendKeys(chromedp.ID("amount"), amount),
			chromedp.SendKeys(chromedp.ID("to"), to),
			chromedp.Click(chromedp.ID("send")),
		)
	}
	verify := chromedp.ID("verify")
	// filledCode checks the challenge page in dev mode: the code was sent
	// when the page opened, and is shown and filled in.
	filledCode := func(t *testing.T) string {
		t.Helper()
		code, ok := emu.LastCode("alice")
		require.True(t, ok)
		assert.Equal(t, code, text(t, "dev-code"), "dev mode shows the code sent")
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		value, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("code")))
		require.NoError(t, err)
		assert.Equal(t, code, value, "and fills it in")
		return code
	}

	login := func(t *testing.T) {
		t.Helper()
		step(t,
			chromedp.Navigate(tb.url+"/login"),
			chromedp.SendKeys(chromedp.ID("username"), "alice"),
			chromedp.SendKeys(chromedp.ID("password"), "alice-password"),
			chromedp.Click(chromedp.ID("login")),
		)
	}

	// The first login from this browser: the password, then the second
	// factor (MFA at sign-in: the emulator challenges an unseen device).
	login(t)
	step(t, chromedp.WaitVisible(verify))
	require.True(t, strings.HasPrefix(location(t), tb.app.EmulatorURL()+"/challenge?"), "sign-in challenged on a new device")
	assert.Equal(t, "Sign in", text(t, "what"))
	filledCode(t)
	step(t, chromedp.Click(verify), chromedp.WaitVisible(chromedp.ID("balance")))
	require.Equal(t, tb.url+"/dashboard", location(t))
	mu.Lock()
	callbacks = nil // the sign-in's; the step-ups' are counted below
	mu.Unlock()

	t.Run("a large transfer runs once, after the challenge", func(t *testing.T) {
		before := balance(t)
		transfer(t, "5000", "bob")
		step(t, chromedp.WaitVisible(verify))
		assert.True(t, strings.HasPrefix(location(t), tb.app.EmulatorURL()+"/challenge?"), "on the emulator's challenge page")
		assert.Equal(t, before, tb.mustBalance("alice"), "nothing moved yet")
		assert.Equal(t, "Transfer", text(t, "what"), "the page says what is approved")
		assert.Equal(t, "Amount\n5,000\nTo\nbob", text(t, "details"))

		filledCode(t)
		screenshot(t, browser, shots, "challenge.png")
		step(t, chromedp.Click(verify), chromedp.WaitVisible(chromedp.ID("result")))
		assert.Equal(t, "Transfer of €5,000.00 to bob done after verification.", text(t, "result"))
		result := location(t)
		assert.Contains(t, result, tb.url+"/transfers/")
		screenshot(t, browser, shots, "result.png")
		assert.Equal(t, before-5000_00, balance(t), "exactly the amount, exactly once")

		t.Run("reloading the result page sends nothing", func(t *testing.T) {
			step(t, chromedp.Navigate(result), chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("result")))
			assert.Equal(t, before-5000_00, balance(t))
		})
		t.Run("opening the callback URL again shows the result and sends nothing", func(t *testing.T) {
			mu.Lock()
			require.Len(t, callbacks, 1)
			callback := callbacks[0]
			mu.Unlock()
			step(t, chromedp.Navigate(callback), chromedp.WaitVisible(chromedp.ID("result")))
			assert.Equal(t, result, location(t))
			assert.Equal(t, before-5000_00, balance(t))
		})
	})

	t.Run("cancel on the challenge page sends nothing", func(t *testing.T) {
		before := balance(t)
		transfer(t, "2000", "bob")
		step(t, chromedp.WaitVisible(chromedp.ID("cancel")), chromedp.Click(chromedp.ID("cancel")),
			chromedp.WaitVisible(chromedp.ID("error")))
		assert.Contains(t, text(t, "error"), "nothing was done")
		assert.True(t, strings.HasPrefix(location(t), tb.url+callbackPath), "back on the bank's callback")
		assert.Equal(t, before, balance(t))
	})

	t.Run("a transfer over the balance is refused on the dashboard, before any challenge", func(t *testing.T) {
		before, tracked := balance(t), len(emu.Tracked())
		transfer(t, "999999", "bob")
		step(t, chromedp.WaitVisible(chromedp.ID("error")))
		assert.Equal(t, "Nothing was sent: insufficient funds.", text(t, "error"))
		assert.Equal(t, tb.url+"/transfer", location(t), "the form answered again, no challenge page")
		assert.Len(t, emu.Tracked(), tracked, "nothing tracked")
		assert.Equal(t, before, balance(t))
	})

	t.Run("a small transfer passes without a challenge", func(t *testing.T) {
		before, tracked := balance(t), len(emu.Tracked())
		transfer(t, "50", "bob")
		step(t, chromedp.WaitVisible(chromedp.ID("result")))
		assert.Equal(t, "Transfer of €50.00 to bob done without extra verification.", text(t, "result"))
		assert.Equal(t, before-50_00, balance(t))
		require.Len(t, emu.Tracked(), tracked+1)
		assert.Equal(t, "ALLOW", emu.Tracked()[tracked].State)
	})

	apiSend := func(t *testing.T, amount string) {
		t.Helper()
		step(t,
			chromedp.Navigate(tb.url+"/dashboard"),
			chromedp.WaitVisible(chromedp.ID("api-amount")),
			chromedp.SendKeys(chromedp.ID("api-amount"), amount),
			chromedp.SendKeys(chromedp.ID("api-to"), "bob"),
			chromedp.Click(chromedp.ID("api-send")),
		)
	}

	t.Run("the API flow: 401, the SDK's popup, retry with the token", func(t *testing.T) {
		before := balance(t)
		// The SDK's popup mode: an iframe of the emulator's page, another
		// site than the bank's (127.0.0.1 against localhost).
		frame := browsertest.NewChallenge(t, browser, tb.app.EmulatorURL(), "iframe")
		apiSend(t, "3000")
		filled := frame.Wait(t, `(function (el) { return el ? el.value : ''; })(document.querySelector('#code'))`)
		code, ok := emu.LastCode("alice")
		require.True(t, ok)
		assert.Equal(t, code, filled, "dev mode: sent when the page opened, filled in")
		step(t, chromedp.WaitVisible(chromedp.ID("__authsignal-popup-iframe")))
		screenshot(t, browser, shots, "api-popup.png")
		frame.Click(t, "#verify", true)

		step(t, chromedp.WaitVisible(chromedp.ID("api-result")))
		assert.Equal(t, "200: Transfer of €3,000.00 to bob done after verification (API).", text(t, "api-result"))
		assert.Contains(t, text(t, "api-log"), "401 insufficient_user_authentication")
		step(t, chromedp.WaitNotPresent(chromedp.ID("__authsignal-popup-container")))
		pollCtx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		_, err := chromedp.Run(pollCtx, chromedp.Poll[bool](
			`document.querySelector('#transactions tbody tr').textContent.indexOf('(API)') >= 0`))
		require.NoError(t, err)
		assert.Contains(t, text(t, "transactions"), "bob\t-€3,000.00\tafter verification (API)",
			"the recent transactions show the API transfer without a reload")
		screenshot(t, browser, shots, "api.png")
		assert.Equal(t, before-3000_00, balance(t))
	})

	t.Run("the API flow: closing the popup sends nothing", func(t *testing.T) {
		before := balance(t)
		frame := browsertest.NewChallenge(t, browser, tb.app.EmulatorURL(), "iframe")
		apiSend(t, "1500") // within the balance: a transfer that cannot run is refused before any challenge
		frame.Wait(t, `document.querySelector('#cancel') ? 'ok' : ''`)
		step(t, chromedp.WaitVisible(chromedp.ID("__authsignal-popup-iframe")),
			chromedp.MouseClickXY(5, 5), // the backdrop
			chromedp.WaitVisible(chromedp.ID("api-result")))
		assert.Equal(t, "You closed the verification: nothing was sent.", text(t, "api-result"))
		assert.Equal(t, before, balance(t))
	})

	t.Run("the API flow falls back to the full-page flow when the popup cannot open", func(t *testing.T) {
		before := balance(t)
		block := func(patterns ...*network.BlockPattern) {
			_, err := chromedp.Call(browser, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: patterns})
			require.NoError(t, err)
		}
		block(&network.BlockPattern{URLPattern: tb.url + "/static/authsignal-browser.js", Block: true})
		defer block()
		apiSend(t, "1200")
		step(t, chromedp.WaitVisible(verify))
		assert.True(t, strings.HasPrefix(location(t), tb.app.EmulatorURL()+"/challenge?"), "on the emulator's page, full size")
		filledCode(t)
		step(t, chromedp.Click(verify), chromedp.WaitVisible(chromedp.ID("result")))
		assert.Equal(t, "Transfer of €1,200.00 to bob done after verification.", text(t, "result"))
		assert.Equal(t, before-1200_00, balance(t))
	})

	t.Run("the admin area: one row per decision, under the protected route", func(t *testing.T) {
		step(t, chromedp.Navigate(tb.url+"/admin"), chromedp.WaitVisible(verify))
		assert.Equal(t, "Admin access", text(t, "what"))
		filledCode(t)
		step(t, chromedp.Click(verify), chromedp.WaitVisible(chromedp.ID("events")))
		screenshot(t, browser, shots, "admin.png")
		events := text(t, "events")
		assert.Contains(t, events, "POST /transfer\ttransfer\tverified\tverified, then run once")
		assert.Contains(t, events, "POST /api/transfer\ttransfer\tverified\tverified, then run once (API token)")
		assert.NotContains(t, events, callbackPath)
	})

	for _, tc := range []struct{ decision, done, amount, id, want string }{
		// Rejected first: the approved one then leaves less than 50,000.00.
		{"reject", "rejected", "60000", "error", "A reviewer did not approve this request"},
		{"approve", "approved", "60000", "result", "Transfer of €60,000.00 to bob done after the bank's review."},
	} {
		t.Run("a transfer over 50,000 waits for review; "+tc.done+" in the admin area", func(t *testing.T) {
			before := balance(t)
			transfer(t, tc.amount, "bob")
			require.Eventually(t, func() bool { return strings.Contains(location(t), "?review=") }, 10*time.Second, 50*time.Millisecond)
			step(t, chromedp.WaitVisible(chromedp.CSS("h1")))
			status := location(t)
			require.True(t, strings.HasPrefix(status, tb.url+callbackPath+"?review="), status)
			ctx, cancel := context.WithTimeout(browser, 10*time.Second)
			defer cancel()
			h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
			require.NoError(t, err)
			assert.Equal(t, "Waiting for approval", h1)
			assert.Equal(t, before, tb.mustBalance("alice"), "nothing moved yet")

			key := strings.TrimPrefix(status, tb.url+callbackPath+"?review=")
			// The same browser is the bank's staff too (alice is admin; the
			// admin area's step-up is remembered from the test before).
			step(t, chromedp.Navigate(tb.url+"/admin"), chromedp.WaitVisible(chromedp.ID(tc.decision+"-"+key)),
				chromedp.Click(chromedp.ID(tc.decision+"-"+key)))
			require.Eventually(t, func() bool { return strings.Contains(location(t), "reviewed=") }, 10*time.Second, 50*time.Millisecond)
			step(t, chromedp.WaitVisible(chromedp.ID("reviews")))
			tb.now.Advance(5 * time.Second) // the guard asks Authsignal at most every 5 s per review
			step(t, chromedp.Navigate(status), chromedp.WaitVisible(chromedp.ID(tc.id)))
			assert.Contains(t, text(t, tc.id), tc.want)
			moved := int64(0)
			if tc.decision == "approve" {
				moved = 60000_00
			}
			assert.Equal(t, before-moved, tb.mustBalance("alice"))
		})
	}

	t.Run("login CSRF: bob's sign-in callback opened here signs nobody in", func(t *testing.T) {
		bob := tb.newUser()
		callback := tb.complete(tb.challenged(bob.post("/login", url.Values{"username": {"bob"}, "password": {"bob-password"}})))
		step(t, chromedp.Navigate(callback), chromedp.WaitVisible(chromedp.ID("error")))
		assert.Contains(t, text(t, "error"), "could not confirm")
		step(t, chromedp.Navigate(tb.url+"/dashboard"), chromedp.WaitVisible(chromedp.ID("balance")))
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		hello, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
		require.NoError(t, err)
		assert.Equal(t, "Hello alice", hello, "still alice, not bob")
	})

	t.Run("a second login from this browser needs no second factor", func(t *testing.T) {
		step(t, chromedp.Navigate(tb.url+"/dashboard"), chromedp.WaitVisible(chromedp.ID("logout")),
			chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("username")))
		tracked := len(emu.Tracked())
		login(t)
		step(t, chromedp.WaitVisible(chromedp.ID("balance")))
		assert.Equal(t, tb.url+"/dashboard", location(t))
		require.Len(t, emu.Tracked(), tracked+1)
		assert.Equal(t, "signIn", emu.Tracked()[tracked].Action)
		assert.Equal(t, "ALLOW", emu.Tracked()[tracked].State)
	})
}

func (tb *testBank) mustBalance(user string) int64 {
	acct, ok := tb.app.bank.account(user)
	require.True(tb.t, ok)
	return acct.Balance
}

// screenshotDir is where screenshots go: $BANK_SCREENSHOTS, or a fresh
// temporary directory that outlives the test so they can be looked at.
func screenshotDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("BANK_SCREENSHOTS"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		return dir
	}
	dir, err := os.MkdirTemp("", "bank-screenshots-")
	require.NoError(t, err)
	return dir
}

func screenshot(t *testing.T, browser context.Context, dir, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s", path)
}
