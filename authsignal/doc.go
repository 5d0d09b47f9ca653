// Package authsignal is a client for the Authsignal Server API: track an
// action, validate a challenge token, read and settle actions, manage users,
// and verify webhooks. It uses the standard library only.
//
// # Against Authsignal
//
// Authenticate with the tenant's secret key and pick the tenant's region
// (the US is the default):
//
//	client := authsignal.NewClient(os.Getenv("AUTHSIGNAL_SECRET"),
//		authsignal.WithRegion(authsignal.RegionEU))
//
//	res, err := client.Track(ctx, userID, "transfer", authsignal.TrackRequest{
//		RedirectURL: "https://app.example/stepup/callback",
//		IPAddress:   clientIP,
//		UserAgent:   r.UserAgent(),
//		Custom:      map[string]any{"amount": 5000},
//	})
//	if err != nil {
//		// Fail closed: Authsignal could not be asked.
//	}
//	switch res.State {
//	case authsignal.StateAllow:
//		// go on
//	case authsignal.StateChallengeRequired:
//		// send the browser to res.URL; it comes back to RedirectURL?token=…
//	default:
//		// BLOCK, REVIEW_REQUIRED and any state not known to this package: refuse
//	}
//
// When the browser comes back, validate the token server-side and check that
// it belongs to the user and action you expect:
//
//	v, err := client.Validate(ctx, authsignal.ValidateRequest{Token: token, UserID: userID, Action: "transfer"})
//	ok := err == nil && v.IsValid && v.State == authsignal.StateChallengeSucceeded &&
//		v.UserID == userID && v.Action == "transfer"
//
// Authsignal does not promise that a token validates only once: single use
// is the caller's job.
//
// # Against the emulator
//
// For development and tests, point the client at the emulator's base URL,
// version path included, and the secret key the emulator is configured with:
//
//	client := authsignal.NewClient("dev-secret",
//		authsignal.WithBaseURL("http://127.0.0.1:8787/v1"))
//
// # Users, authenticators and queries
//
// GetUser, UpdateUser, DeleteUser and DeleteUserAndActions manage users;
// GetAuthenticators, EnrollVerifiedAuthenticator and DeleteAuthenticator
// their authenticators; QueryUserActions and QueryUsers search. The fields of
// UpdateUserRequest are pointers: nil is not sent, String("") clears a
// field, Bool(false) sends false:
//
//	client.UpdateUser(ctx, userID, authsignal.UpdateUserRequest{
//		Email:         authsignal.String(newEmail),
//		EmailVerified: authsignal.Bool(true), // verified by the application
//		DisplayName:   authsignal.String(""), // cleared
//	})
//
// DeleteUser keeps the user's actions, as the API does, so a token of a
// challenge completed before the deletion still validates; a guard's single
// use and binding checks still apply. DeleteUserAndActions removes them too.
//
// # Errors, timeouts and retries
//
// A non-2xx answer is an *APIError carrying the status and Authsignal's
// error code; everything else wraps one of the package's sentinel errors
// (ErrTransport, ErrMalformedResponse, ErrInvalidActionCode, …). On a 429
// too_many_requests (or a 503) APIError.RetryAfter holds the server's
// Retry-After, capped at MaxRetryAfter; the client does not wait on its own.
// Each call
// is bounded by DefaultTimeout (10 s, see WithTimeout), retries included.
// A failed attempt is retried up to DefaultRetries (2) times, only when that
// is safe: any transport failure or 5xx of a GET, and only a failure to
// connect for POST, PATCH and DELETE, so that a track is never sent twice
// (see WithRetries).
//
// Like the official SDKs, every request carries an X-Authsignal-Version
// header, here with this client's version.
//
// The secret key is sent as the user name of HTTP Basic authentication and
// never appears in an error or in the printed form of a Client.
package authsignal
