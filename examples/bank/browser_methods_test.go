package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
	"github.com/stepupkit/stepup/examples/internal/browsertest"
)

// TestBrowserMethods runs the verification methods of the demo in headless
// Chromium, through the bank's pages and the emulator's hosted page: what a
// transfer approves, the passkey that changing the email address demands
// (set up on first use with Chromium's virtual authenticator, then used), a
// proof without an accepted method refused, an authenticator app's codes,
// and a customer with no second factor sent to enrol.
func TestBrowserMethods(t *testing.T) {
	browser := browsertest.Chromium(t)
	tb := startBank(t)
	emuURL := tb.app.EmulatorURL()
	require.True(t, strings.HasPrefix(emuURL, "http://localhost:"), "passkeys need a host name: %s", emuURL)
	tb.url = tb.app.cfg.PublicURL
	emu := tb.app.Emulator()
	// The operator's view of Authsignal: its API with the secret key.
	operator := authsignal.NewClient(tb.app.emuSecret, authsignal.WithBaseURL(emuURL+"/v1"))

	step := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		browserStep(t, browser, steps...)
	}
	text := func(t *testing.T, id string) string { t.Helper(); return browserText(t, browser, id) }
	location := func(t *testing.T) string { t.Helper(); return browserLocation(t, browser) }
	// onChallengePage waits for the emulator's hosted page (the bank's own
	// pages have elements of the same ids).
	onChallengePage := func(t *testing.T) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			at, err := chromedp.Run(browser, chromedp.Location())
			if err == nil && strings.HasPrefix(at, emuURL+"/challenge") {
				return
			}
			require.True(t, time.Now().Before(deadline), "not on the emulator's page: %s (%v)", at, err)
			time.Sleep(50 * time.Millisecond)
		}
	}
	// methods lists the methods the page's buttons offer.
	methods := func(t *testing.T) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('button[name=method]')).map(function (b) { return b.value; }).join(',')`))
		require.NoError(t, err)
		return s
	}
	login := func(t *testing.T, user string) {
		t.Helper()
		step(t,
			chromedp.Navigate(tb.url+"/login"),
			chromedp.SendKeys(chromedp.ID("username"), user),
			chromedp.SendKeys(chromedp.ID("password"), user+"-password"),
			chromedp.Click(chromedp.ID("login")),
		)
	}
	logout := func(t *testing.T) {
		t.Helper()
		step(t, chromedp.Navigate(tb.url+"/dashboard"), chromedp.WaitVisible(chromedp.ID("logout")),
			chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("username")))
	}
	hello := func(t *testing.T) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
		require.NoError(t, err)
		return s
	}
	changeEmail := func(t *testing.T, to string) {
		t.Helper()
		step(t,
			chromedp.Navigate(tb.url+"/settings"),
			chromedp.SendKeys(chromedp.ID("new-email"), to),
			chromedp.Click(chromedp.ID("change-email")),
		)
	}
	email := func(t *testing.T, user string) string {
		t.Helper()
		acct, ok := tb.app.bank.account(user)
		require.True(t, ok)
		return acct.Email
	}
	// lastTracked is the emulator's newest action for user and action.
	lastTracked := func(t *testing.T, user, action string) emulator.TrackedAction {
		t.Helper()
		all := emu.Tracked()
		for i := len(all) - 1; i >= 0; i-- {
			if all[i].UserID == user && all[i].Action == action {
				return all[i]
			}
		}
		require.Failf(t, "not tracked", "%s %s", user, action)
		return emulator.TrackedAction{}
	}
	// verifyEmailFirst runs the first step of an enrolment on the page: a
	// code to the email address (dev mode shows and fills it in).
	verifyEmailFirst := func(t *testing.T, user string) {
		t.Helper()
		step(t, chromedp.Click(chromedp.CSS(`button[value="EMAIL_OTP"]`)), chromedp.WaitVisible(chromedp.ID("dev-code")))
		code, ok := emu.LastCode(user)
		require.True(t, ok)
		assert.Equal(t, code, text(t, "dev-code"))
		step(t, chromedp.Click(chromedp.ID("verify")))
	}

	// Chromium's virtual authenticator: a platform authenticator that
	// keeps passkeys (resident keys) and verifies the user.
	auth := browsertest.Passkeys(t, browser)
	credentials := func(t *testing.T) []*webauthn.Credential {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		got, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: auth})
		require.NoError(t, err)
		return got.Credentials
	}

	// alice signs in with the email code she is enrolled with.
	login(t, "alice")
	onChallengePage(t)
	step(t, chromedp.WaitVisible(chromedp.ID("verify")), chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("balance")))

	t.Run("the challenge page of a large transfer shows amount and payee", func(t *testing.T) {
		before := tb.mustBalance("alice")
		step(t,
			chromedp.Navigate(tb.url+"/dashboard"),
			chromedp.SendKeys(chromedp.ID("amount"), "4321"),
			chromedp.SendKeys(chromedp.ID("to"), "bob"),
			chromedp.Click(chromedp.ID("send")),
		)
		onChallengePage(t)
		step(t, chromedp.WaitVisible(chromedp.ID("verify")))
		assert.Equal(t, "Transfer", text(t, "what"))
		assert.Equal(t, "Amount\n4,321\nTo\nbob", text(t, "details"), "what the customer approves, as the bank judged it")
		assert.Equal(t, before, tb.mustBalance("alice"), "nothing moved yet")
		step(t, chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("result")))
		assert.Equal(t, "Transfer of €4,321.00 to bob done after verification.", text(t, "result"))
		assert.Equal(t, before-4321_00, tb.mustBalance("alice"))
		assert.Equal(t, emulator.MethodEmailOTP, lastTracked(t, "alice", "transfer").VerificationMethod)
	})

	t.Run("change email: a code to the email, a passkey set up, then the passkey alone", func(t *testing.T) {
		require.Empty(t, credentials(t))
		changeEmail(t, "alice@new.example")
		// alice has no passkey: the page sets one up, after a code to the
		// address she is enrolled with; it never takes the code as proof.
		onChallengePage(t)
		step(t, chromedp.WaitVisible(chromedp.ID("email")))
		assert.Equal(t, "Change email", text(t, "what"))
		assert.Equal(t, "EMAIL_OTP", methods(t), "a code to verify the address, before anything is set up")
		assert.Equal(t, "alice@bank.example", email(t, "alice"), "nothing changed yet")
		verifyEmailFirst(t, "alice")
		step(t, chromedp.WaitVisible(chromedp.CSS(`form[action="/challenge/enrol"]`)))
		assert.Equal(t, "PASSKEY", methods(t), "the only method set up here is a passkey")
		assert.Equal(t, "alice@bank.example", email(t, "alice"), "a verified email alone changes nothing")
		step(t, chromedp.Click(chromedp.CSS(`button[value="PASSKEY"]`)), chromedp.WaitVisible(chromedp.ID("passkey")),
			chromedp.Click(chromedp.ID("passkey")), chromedp.WaitVisible(chromedp.ID("notice")))
		assert.Equal(t, "Your email address is now alice@new.example.", text(t, "notice"))
		assert.Equal(t, tb.url+"/settings?changed=email", location(t))
		assert.Equal(t, "alice@new.example", email(t, "alice"))
		assert.Equal(t, emulator.MethodPasskey, lastTracked(t, "alice", "changeEmail").VerificationMethod)
		creds := credentials(t)
		require.Len(t, creds, 1, "the authenticator holds alice's passkey")
		assert.Equal(t, "localhost", creds[0].RpID)
		assert.True(t, creds[0].IsResidentCredential)

		// The second change: the passkey she registered, nothing else.
		changeEmail(t, "alice@second.example")
		onChallengePage(t)
		step(t, chromedp.WaitVisible(chromedp.ID("passkey")))
		assert.Empty(t, methods(t), "only the passkey is offered")
		assert.Equal(t, "alice@new.example", email(t, "alice"))
		step(t, chromedp.Click(chromedp.ID("passkey")), chromedp.WaitVisible(chromedp.ID("notice")))
		assert.Equal(t, "Your email address is now alice@second.example.", text(t, "notice"))
		assert.Equal(t, "alice@second.example", email(t, "alice"))
		creds = credentials(t)
		require.Len(t, creds, 1, "no second passkey")
		assert.Positive(t, creds[0].SignCount, "the passkey signed the second change")
	})

	t.Run("a proof without a method the action accepts is refused, nothing changes, a passkey then runs it once", func(t *testing.T) {
		before := email(t, "alice")
		changeEmail(t, "alice@third.example")
		onChallengePage(t)
		step(t, chromedp.WaitVisible(chromedp.ID("passkey")))
		challengeURL := location(t)
		tracked := lastTracked(t, "alice", "changeEmail")
		require.Equal(t, authsignal.StateChallengeRequired, authsignal.State(tracked.State))
		// Someone with Authsignal's secret key (an operator in its portal,
		// a support tool) marks the challenge succeeded: the proof reports
		// no verification method, which is not the passkey the bank's
		// policy demands. The browser then reaches the bank's callback.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		updated, err := operator.UpdateAction(ctx, "alice", "changeEmail", tracked.IdempotencyKey, authsignal.StateChallengeSucceeded)
		require.NoError(t, err)
		require.Equal(t, authsignal.StateChallengeSucceeded, updated.State)
		require.Empty(t, updated.VerificationMethod)
		// A token of the succeeded action (the one in the challenge URL was
		// handed out with the challenge: the bank never takes it as proof).
		again, err := operator.Track(ctx, "alice", "changeEmail", authsignal.TrackRequest{IdempotencyKey: tracked.IdempotencyKey})
		require.NoError(t, err)
		require.Equal(t, authsignal.StateChallengeSucceeded, again.State)
		callback, err := url.Parse(tracked.RedirectURL)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(callback.String(), tb.url+callbackPath), callback.String())
		q := callback.Query()
		q.Set("token", again.Token)
		callback.RawQuery = q.Encode()

		step(t, chromedp.Navigate(callback.String()), chromedp.WaitVisible(chromedp.ID("error")))
		errCtx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		code, err := chromedp.Run(errCtx, chromedp.AttributeValue(chromedp.ID("error"), "data-code"))
		require.NoError(t, err)
		assert.Equal(t, "wrong_method", code.Value)
		assert.Equal(t, "You verified with no reported method, but this action accepts only a passkey. "+
			"Nothing was done; verify again with that, or start again.", text(t, "error"))
		assert.Equal(t, before, email(t, "alice"), "the email did not change")
		step(t, chromedp.Navigate(tb.url+"/settings"), chromedp.WaitVisible(chromedp.ID("email")))
		assert.Equal(t, before, text(t, "email"))

		// The refusal spent nothing: once the challenge is open again, the
		// passkey proves the same parked change, which runs once.
		reopen, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = operator.UpdateAction(reopen, "alice", "changeEmail", tracked.IdempotencyKey, authsignal.StateChallengeRequired)
		require.NoError(t, err)
		step(t, chromedp.Navigate(challengeURL))
		onChallengePage(t)
		step(t, chromedp.WaitVisible(chromedp.ID("passkey")), chromedp.Click(chromedp.ID("passkey")),
			chromedp.WaitVisible(chromedp.ID("notice")))
		assert.Equal(t, "Your email address is now alice@third.example.", text(t, "notice"))
		assert.Equal(t, "alice@third.example", email(t, "alice"))
		assert.Equal(t, emulator.MethodPasskey, lastTracked(t, "alice", "changeEmail").VerificationMethod)
	})

	t.Run("an authenticator app's codes, computed at the emulator's clock", func(t *testing.T) {
		key, err := totp.Generate(totp.GenerateOpts{Issuer: "Stepup Bank", AccountName: "bob@bank.example"})
		require.NoError(t, err)
		// bob has set up an authenticator app besides his email codes.
		emu.EnrollUser(emulator.User{ID: "bob", Email: "bob@bank.example", TOTPSecret: key.Secret(),
			Methods: []string{emulator.MethodEmailOTP, emulator.MethodAuthenticatorApp}})
		useApp := func(t *testing.T, at time.Time) {
			t.Helper()
			onChallengePage(t)
			step(t, chromedp.WaitVisible(chromedp.CSS(`button[value="AUTHENTICATOR_APP"]`)))
			assert.Equal(t, "EMAIL_OTP,AUTHENTICATOR_APP", methods(t), "bob picks his app")
			step(t, chromedp.Click(chromedp.CSS(`button[value="AUTHENTICATOR_APP"]`)), chromedp.WaitVisible(chromedp.ID("code")))
			code, err := totp.GenerateCode(key.Secret(), at)
			require.NoError(t, err)
			step(t, chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("verify")))
		}

		logout(t)
		login(t, "bob")
		useApp(t, tb.now.Now())
		step(t, chromedp.WaitVisible(chromedp.ID("balance")))
		assert.Equal(t, "Hello bob", hello(t))
		assert.Equal(t, emulator.MethodAuthenticatorApp, lastTracked(t, "bob", "signIn").VerificationMethod)

		before := tb.mustBalance("bob")
		step(t,
			chromedp.Navigate(tb.url+"/dashboard"),
			chromedp.SendKeys(chromedp.ID("amount"), "1500"),
			chromedp.SendKeys(chromedp.ID("to"), "alice"),
			chromedp.Click(chromedp.ID("send")),
		)
		// A code is good once: the next step's, as the app shows it 30
		// seconds on (within the emulator's window).
		useApp(t, tb.now.Now().Add(30*time.Second))
		step(t, chromedp.WaitVisible(chromedp.ID("result")))
		assert.Equal(t, "Transfer of €1,500.00 to alice done after verification.", text(t, "result"))
		assert.Equal(t, before-1500_00, tb.mustBalance("bob"))
		assert.Equal(t, emulator.MethodAuthenticatorApp, lastTracked(t, "bob", "transfer").VerificationMethod)
	})

	t.Run("a customer with no second factor is sent to enrol", func(t *testing.T) {
		logout(t)
		// carol's first sign-in: Authsignal has no authenticator for her,
		// and the bank does not sign in on a password alone; the page
		// sets up email codes (the address she types, verified).
		login(t, "carol")
		onChallengePage(t)
		step(t, chromedp.WaitVisible(chromedp.ID("email")))
		assert.Equal(t, "EMAIL_OTP", methods(t))
		assert.Equal(t, "Sign in", text(t, "what"))
		step(t, chromedp.SendKeys(chromedp.ID("email"), "carol@bank.example"))
		verifyEmailFirst(t, "carol")
		step(t, chromedp.WaitVisible(chromedp.ID("balance")))
		assert.Equal(t, "Hello carol", hello(t))
		signIn := lastTracked(t, "carol", "signIn")
		assert.Equal(t, emulator.MethodEmailOTP, signIn.VerificationMethod)
		assert.Equal(t, []string{"new-device"}, signIn.RuleIDs)

		// Support removes her email codes: she is unenrolled again, still
		// signed in. Changing the email (unenrolled: enroll) sends her to
		// set up a passkey, after a code to the email she types.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		auths, err := operator.GetAuthenticators(ctx, "carol")
		require.NoError(t, err)
		require.Len(t, auths, 1)
		require.NoError(t, operator.DeleteAuthenticator(ctx, "carol", auths[0].UserAuthenticatorID))

		changeEmail(t, "carol@new.example")
		onChallengePage(t)
		step(t, chromedp.WaitVisible(chromedp.ID("email")))
		tracked := lastTracked(t, "carol", "changeEmail")
		assert.Equal(t, authsignal.StateAllow, authsignal.State(tracked.State), "Authsignal lets an unenrolled user through")
		assert.Equal(t, "carol@bank.example", email(t, "carol"), "the bank did not")
		ctx, cancel = context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		prefilled, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("email")))
		require.NoError(t, err)
		assert.Equal(t, "carol@bank.example", prefilled, "the address Authsignal knows for her, to verify again")
		verifyEmailFirst(t, "carol")
		step(t, chromedp.WaitVisible(chromedp.CSS(`button[value="PASSKEY"]`)),
			chromedp.Click(chromedp.CSS(`button[value="PASSKEY"]`)), chromedp.WaitVisible(chromedp.ID("passkey")),
			chromedp.Click(chromedp.ID("passkey")), chromedp.WaitVisible(chromedp.ID("notice")))
		assert.Equal(t, "Your email address is now carol@new.example.", text(t, "notice"))
		assert.Equal(t, "carol@new.example", email(t, "carol"))
		assert.Equal(t, emulator.MethodPasskey, lastTracked(t, "carol", "changeEmail").VerificationMethod)
		assert.Len(t, credentials(t), 2, "carol's passkey beside alice's")
	})
}
