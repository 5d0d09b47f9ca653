package stepup

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/stepupkit/stepup/authsignal"
)

// originError is a challenge URL, well formed, on an origin that
// Config.ChallengeOrigins does not list: the guard's configuration and the
// provider's disagree, which no retry fixes.
type originError struct{ scheme, host string }

func (e *originError) Error() string {
	return fmt.Sprintf("the challenge URL's origin %s://%s is not in Config.ChallengeOrigins", e.scheme, e.host)
}

// misconfiguredProvider returns the refusal for a provider failure that is
// the application's configuration, not an outage: a challenge URL outside
// ChallengeOrigins, or a secret key (or region) that Authsignal refuses.
// Retrying cannot help, so it is a 500 naming what to fix rather than a 503
// with Retry-After, and it fails closed even for a FailOpen policy: a wrong
// key must not let every request through. It returns nil for other errors.
func (g *Guard) misconfiguredProvider(err error) *Error {
	var oe *originError
	if errors.As(err, &oe) {
		return errMisconfigured(fmt.Sprintf("%s %q; add it there if it is your Authsignal (or emulator) host",
			oe.Error(), g.cfg.ChallengeOrigins))
	}
	if reason := credentialsProblem(err); reason != "" {
		return errMisconfigured(reason)
	}
	return nil
}

// credentialsProblem says what to fix when err is Authsignal refusing the
// client's secret key (a 401, which it answers on any path before anything
// else); "" otherwise.
func credentialsProblem(err error) string {
	var ae *authsignal.APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusUnauthorized {
		return "Authsignal refused the secret key (" + ae.Error() + "): check the key given to " +
			"authsignal.NewClient, and that the client's region or base URL is the one of the tenant the key belongs to"
	}
	return ""
}

// checkToken is what CheckProvider validates: no token Authsignal issued,
// so the answer is "not valid" and nothing is tracked or changed.
const checkToken = "stepup-provider-check"

// CheckProvider asks the provider whether the guard can talk to it: that it
// answers, and accepts the secret key. It validates a token that no
// challenge issued, which tracks nothing and changes nothing. An
// application may call it at start-up and refuse to start on an error
// (which wraps ErrMisconfigured for a refused key, ErrProvider for a
// provider that does not answer); the guard never calls it itself.
//
// It cannot check ChallengeOrigins: only a challenge shows where the
// provider sends browsers. A guard whose origins do not list it refuses
// that challenge with a 500 and logs the origin to add.
func (g *Guard) CheckProvider(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ProviderTimeout)
	defer cancel()
	_, err := g.cfg.Provider.Validate(ctx, authsignal.ValidateRequest{Token: checkToken})
	var ae *authsignal.APIError
	switch {
	case err == nil:
		return nil
	case credentialsProblem(err) != "":
		return fmt.Errorf("%w: %s", ErrMisconfigured, credentialsProblem(err))
	case errors.As(err, &ae) && ae.StatusCode >= 400 && ae.StatusCode < 500 && ae.StatusCode != http.StatusTooManyRequests:
		// Authsignal checks the key before anything else: a request it
		// refuses for another reason was authenticated.
		return nil
	}
	return fmt.Errorf("%w: %w", ErrProvider, err)
}
