package browsertest

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Passkeys gives the browser Chromium's virtual authenticator (DevTools'
// WebAuthn domain): a platform authenticator over CTAP2 that keeps
// passkeys (resident keys), verifies the user and answers without a
// touch. It returns the authenticator's id, for webauthn.GetCredentials
// and webauthn.SetUserVerified.
func Passkeys(t *testing.T, browser context.Context) webauthn.AuthenticatorID {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 20*time.Second)
	defer cancel()
	_, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{})
	require.NoError(t, err)
	auth, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		}})
	require.NoError(t, err)
	return auth.AuthenticatorID
}
