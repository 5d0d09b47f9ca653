package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBrowser runs the demo's flows in headless Chromium: the user clicks,
// the emulator's hosted page challenges, the OTP comes from the emulator's
// Go API, and the assertions read what the pages show.
func TestBrowser(t *testing.T) {
	browser := newBrowser(t)
	tb := startBank(t)
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
		ctx, cancel := context.WithTimeout(browser, 20*time.Second)
		defer cancel()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	text := func(t *testing.T, id string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		require.NoError(t, err)
		return s
	}
	location := func(t *testing.T) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.Location())
		require.NoError(t, err)
		return s
	}
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
	emailOTP := chromedp.CSS(`button[name=method][value=EMAIL_OTP]`)

	step(t,
		chromedp.Navigate(tb.url+"/login"),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-password"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("balance")),
	)

	t.Run("a large transfer runs once, after the challenge", func(t *testing.T) {
		before := balance(t)
		transfer(t, "5000", "bob")
		step(t, chromedp.WaitVisible(emailOTP))
		assert.True(t, strings.HasPrefix(location(t), tb.app.EmulatorURL()+"/challenge?"), "on the emulator's challenge page")
		assert.Equal(t, before, tb.mustBalance("alice"), "nothing moved yet")

		step(t, chromedp.Click(emailOTP), chromedp.WaitVisible(chromedp.ID("code")))
		code, ok := emu.LastCode("alice")
		require.True(t, ok)
		assert.Equal(t, code, text(t, "dev-code"), "dev mode shows the code sent")
		step(t, chromedp.SendKeys(chromedp.ID("code"), code))
		screenshot(t, browser, shots, "challenge.png")
		step(t,
			chromedp.Click(chromedp.ID("verify")),
			chromedp.WaitVisible(chromedp.ID("result")),
		)
		assert.Equal(t, "Transfer of 5,000.00 to bob done after verification.", text(t, "result"))
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

	t.Run("a small transfer passes without a challenge", func(t *testing.T) {
		before, tracked := balance(t), len(emu.Tracked())
		transfer(t, "50", "bob")
		step(t, chromedp.WaitVisible(chromedp.ID("result")))
		assert.Equal(t, "Transfer of 50.00 to bob done without extra verification.", text(t, "result"))
		assert.Equal(t, before-50_00, balance(t))
		require.Len(t, emu.Tracked(), tracked+1)
		assert.Equal(t, "ALLOW", emu.Tracked()[tracked].State)
	})

	t.Run("the API flow: 401, popup challenge, retry with the token", func(t *testing.T) {
		before := balance(t)
		step(t,
			chromedp.SendKeys(chromedp.ID("api-amount"), "3000"),
			chromedp.SendKeys(chromedp.ID("api-to"), "bob"),
		)
		popupCtx, cancel := context.WithTimeout(browser, 20*time.Second)
		defer cancel()
		popups := chromedp.WaitNewTarget(popupCtx, func(info *target.Info) bool { return info.Type == "page" })
		step(t, chromedp.Click(chromedp.ID("api-send")))
		var id target.ID
		select {
		case id = <-popups:
		case <-popupCtx.Done():
			t.Fatal("the page opened no popup")
		}
		require.NotEmpty(t, id)
		popup, closePopup := chromedp.NewContext(browser, chromedp.WithTargetID(id))
		defer closePopup()
		pctx, cancelP := context.WithTimeout(popup, 20*time.Second)
		defer cancelP()
		require.NoError(t, chromedp.Do(pctx, chromedp.WaitVisible(emailOTP), chromedp.Click(emailOTP),
			chromedp.WaitVisible(chromedp.ID("code"))))
		code, ok := emu.LastCode("alice")
		require.True(t, ok)
		// The popup closes itself once it has handed the token over.
		require.NoError(t, chromedp.Do(pctx, chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("verify"))))

		step(t, chromedp.WaitVisible(chromedp.ID("api-result")))
		assert.Equal(t, "200: Transfer of 3,000.00 to bob done after verification (API).", text(t, "api-result"))
		assert.Contains(t, text(t, "api-log"), "401 insufficient_user_authentication")
		screenshot(t, browser, shots, "api.png")
		assert.Equal(t, before-3000_00, balance(t))
	})
}

func (tb *testBank) mustBalance(user string) int64 {
	acct, ok := tb.app.bank.account(user)
	require.True(tb.t, ok)
	return acct.Balance
}

// newBrowser starts headless Chromium with a fresh profile. Without a
// Chromium the test is skipped, unless CI=true, where that is a failure.
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
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
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
