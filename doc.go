// Package stepup puts step-up authentication in front of the sensitive
// routes of a web application, with Authsignal actions as the risk and MFA
// engine.
//
// An application declares which routes are sensitive and which Authsignal
// action code each maps to. When a logged-in user calls such a route, the
// Guard tracks the action with Authsignal:
//
//   - ALLOW: the handler runs.
//   - ALLOW with isEnrolled false (the user has no second factor):
//     Policy.Unenrolled decides: 403 by default (UnenrolledDeny), an
//     enrolment handled as a challenge (UnenrolledEnroll), or the handler
//     runs, reported (UnenrolledAllow).
//   - BLOCK: 403; REVIEW_REQUIRED: 403 (Config.ReviewStatus), or, with
//     Policy.Review, parked until a reviewer decides and then run once from
//     its status URL under the callback (Guard.Webhook learns decisions).
//   - CHALLENGE_REQUIRED from a browser: the request (method, path, query,
//     allow-listed headers and body) is parked in the Store, its id is
//     remembered in the user's session, and the browser is sent (303) to
//     Authsignal's challenge page. When the user comes back to the
//     Callback with a token, the guard validates it, checks that it belongs
//     to this user, action and parked request, and replays the parked
//     request through the application; token and park are spent atomically
//     when the replay reaches the protected route, so it runs exactly once.
//   - CHALLENGE_REQUIRED from an API client: 401 with
//     WWW-Authenticate: Bearer error="insufficient_user_authentication" and a
//     JSON body carrying the challenge url; the client completes the
//     challenge and resends its request with the token in the Step-Up-Token
//     header.
//   - A challenge completed with a verification method the policy's
//     Methods do not accept (WithMethods(MethodPasskey), say): 403
//     (ErrWrongMethod) naming the method used and the ones accepted;
//     nothing runs or is spent. Attributes with Display set are shown to
//     the user as what they approve: the 401's "display", and the optional
//     Config.ConfirmPage before the redirect.
//   - Authsignal down, slow or answering garbage: 503 with Retry-After
//     (fail closed), unless the policy says FailOpen.
//   - A secret key Authsignal refuses, or a challenge URL outside
//     Config.ChallengeOrigins: a configuration error, not an outage: 500
//     (ErrMisconfigured, FailOpen or not), logged with what to fix.
//     Guard.CheckProvider finds a refused key or an unreachable provider at
//     start-up.
//
// # Quick start (net/http)
//
//	client := authsignal.NewClient(os.Getenv("AUTHSIGNAL_SECRET"))
//	guard, err := stepup.New(stepup.Config{
//		Provider:    client,
//		Sessions:    sessions.NewCookieStore(hashKey, blockKey),
//		UserID:      func(r *http.Request) (string, error) { return currentUser(r), nil },
//		CallbackURL: "https://app.example/stepup/callback",
//		Policies: []stepup.Policy{
//			{Method: http.MethodPost, Route: "/transfer", Action: "transfer",
//				Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: stepup.TypeNumber}}},
//			{Method: "*", Route: "/admin/", Action: "adminAccess", Remember: 5 * time.Minute},
//		},
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	mux := http.NewServeMux()
//	mux.HandleFunc("POST /transfer", transfer)
//	mux.Handle("POST /email", guard.Require("changeEmail")(http.HandlerFunc(changeEmail)))
//	handler := guard.Middleware(mux) // the table, matched on the mux's own pattern
//	mux.Handle("GET /stepup/callback", guard.Callback(handler))
//	if err := guard.CheckServeMux(mux); err != nil {
//		log.Fatal(err)
//	}
//	log.Fatal(http.ListenAndServe(":8080", handler))
//
// # net/http
//
// The guard speaks http.Handler; everything an application calls is here:
//
//   - [Guard.NewServeMux] returns a [ServeMux] that wraps each protected route
//     as it is registered, so that no protected handler can be registered
//     past the guard; call [ServeMux.Check] once the routes are in.
//   - [Guard.Middleware] wraps an existing *http.ServeMux and matches the
//     policy table on the mux's own pattern; [Guard.CheckServeMux] checks it
//     at start-up.
//   - [Guard.Require] protects one handler by its action code, with
//     [WithAttributes], [WithRemember], [WithFailOpen] or [WithCustom].
//   - [Guard.Callback], mounted at Config.CallbackURL, validates the token
//     and replays the parked request through the handler it is given.
//   - [Guard.PreserveBody] keeps the exact body for the guard when a
//     middleware in front of it reads the body; [Guard.Forget] ends the
//     guard's session at logout; [VerificationFrom] tells a protected
//     handler how it was let through.
//   - [Guard.Grants] lists a user's Remember grants across browsers and
//     instances, and [Guard.Revoke] ends them everywhere (a settings page,
//     logout everywhere, an authenticator removed).
//   - Config.OnEvent and Config.OnStep report decisions and steps; package
//     github.com/stepupkit/stepup/telemetry/otel (a module of its own)
//     turns them into OpenTelemetry metrics and spans.
//
// # Routers, policy files and stores
//
// Each router has a thin adapter that matches on the router's own route
// pattern and answers as the guard does:
//
//   - echo v4: package github.com/stepupkit/stepup/adapters/stepupecho
//     (c.Path(); Middleware in e.Use, never e.Pre).
//   - chi v5: package github.com/stepupkit/stepup/adapters/stepupchi
//     (RoutePattern(); Middleware inline, where chi has routed).
//   - gin: package github.com/stepupkit/stepup/adapters/stepupgin, a module
//     of its own (c.FullPath(); Middleware before the routes).
//
// Each has Middleware, Require, Callback, PreserveBody and CheckRoutes.
//
// The table can also be read from a YAML or JSON file with package
// github.com/stepupkit/stepup/policyfile (policyfile.Load), which checks
// every entry as New does (CheckPolicies). It is a package of its own so
// that this one links only the standard library and gorilla/sessions.
//
// Parked requests, passes, grants and spent tokens live in the Store:
// [NewMemoryStore] (the default) for one process, or the Redis store in
// package github.com/stepupkit/stepup/stores/redis (redisstore.New, a
// module of its own) shared by several instances.
//
// # MFA at sign-in
//
// With Config.SignIn, the login handler hands over to Guard.SignIn once the
// first factor checked out: the guard tracks the sign-in action (default
// "signIn") and calls SignIn.Complete, which starts the application's
// login session, only when Authsignal allows it for an enrolled user, or
// after the challenge it asks for is passed — in the browser that entered
// the password (the pending sign-in is bound to the guard's sign-in
// cookie, so a callback URL opened elsewhere signs nobody in), or by an API
// client's retry carrying Step-Up-Token. Nothing of the request's body or
// credentials is kept. Complete must start a new session id; the guard
// drops its own state of the browser at every sign-in.
//
//	guard, err := stepup.New(stepup.Config{
//		// …
//		SignIn: &stepup.SignIn{Complete: startSession, Next: "/home"},
//	})
//	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
//		if userID, ok := checkPassword(r); ok {
//			guard.SignIn(w, r, userID) // answers the request
//			return
//		}
//		http.Error(w, "wrong user name or password", http.StatusUnauthorized)
//	})
//
// # Matching
//
// Policy.Route is the pattern as registered with the router
// ("/admin/users/{id}" for a ServeMux, "/admin/users/:id" in echo). The
// guard decides from the router's own match, never from a second parse of
// the raw path. A GET policy also covers HEAD. New rejects an invalid table
// and names the offending entry. At start-up, CheckServeMux,
// ServeMux.Check and each adapter's CheckRoutes report policies that name
// no route of the router, the callback not mounted at the path of
// Config.CallbackURL, and (where the router lists its routes) a handler
// protected under one route and registered under another that nothing
// protects.
//
// # What is kept where
//
// The browser only ever carries opaque random ids, inside the guard's own
// session (Config.SessionName, default "stepup"): a gorilla/sessions session
// of Config.Sessions or, with Config.CookieKeys, a cookie the guard seals
// itself with AES-256-GCM, without a gorilla Store and at a fraction of a
// CookieStore's cost. Parked
// requests, single-use passes, Remember grants, spent tokens and the kept
// outcome of each replay live in the Store (default NewMemoryStore; use a
// shared store when several instances serve the same users), sealed with
// AES-256-GCM under Config.RecordKeys: a record read, altered or planted
// in the Store by anyone else is unreadable or refused. Each parked
// request moves from pending to consumed in one atomic Store operation
// before its handler runs.
//
// The application's login cookie must be sent on the top-level redirect
// back from the challenge page: use SameSite=Lax (the browsers' default),
// not Strict. The guard sets the options of its own session cookie
// (Config.SessionName) whatever the Store's defaults: Path /, HttpOnly,
// SameSite=Lax, Secure when CallbackURL is https, and a Max-Age no longer
// than the longest record it points to; it is deleted when it holds
// nothing.
//
// # Middleware order
//
// Put the guard after authentication and CSRF checks, so a cross-site
// request is refused before it can be parked; the replay passes through
// them again. When a middleware in front of the guard reads the body (a
// CSRF check reading a form field), wrap the application with
// Guard.PreserveBody (each adapter has its own PreserveBody) so that the
// exact bytes can be parked.
//
// Middleware must see the router's match: wrap the *http.ServeMux itself
// (logging(guard.Middleware(mux))), mount it under a mux pattern, or build
// the mux with Guard.NewServeMux. In
// front of any other handler, where it cannot tell which route a request
// is, it refuses every request with a 500 wrapping ErrMisconfigured and
// logs how to fix the wiring, rather than protect nothing. Register method
// overrides before routing, for the same reason.
//
// # Limits
//
// Parked body 64 KiB (Config.MaxBodyBytes; multipart and compressed bodies
// are refused before anything is tracked), parked request lifetime 10
// minutes (ParkTTL), 5 pending parks per session (MaxPending), 20
// challenges per user and 5 per session per ParkTTL (MaxChallengesPerUser,
// MaxChallengesPerSession, checked before tracking; a passed challenge
// gives its slot back, and browsers where the user passed one count apart
// from every other client, so that a stolen login session cannot lock the
// user out), parked headers 32
// values and 8 KiB (MaxHeaderValues, MaxHeaderBytes; 431 before
// tracking), GET pass 1 minute (PassTTL), provider calls 5 seconds
// (ProviderTimeout). The default MemoryStore holds 160,000 records and
// 256 MiB (about 42,000 flows per ParkTTL, 70 challenges a second); every
// challenge reserves the room of what follows it once passed, and an
// eighth of each limit is kept back from new challenges.
//
// # For adapter and store authors
//
// An application needs the names above (SignIn among them), Config, Policy
// and Attribute, the errors and the events. The rest of the exported surface is for the people
// who plug a router or a store into the guard:
//
//   - Router adapters (adapters/stepupecho is the reference) find a [Rule]
//     with [Guard.Match] or [Guard.NewRule], run it with [Guard.Enforce],
//     and answer their own refusals with [Guard.WriteError] (or
//     [Guard.Misconfigured] for wiring they cannot check); route checkers
//     use [Guard.SplitMethods].
//   - Stores implement [Store] (and [Counter] to share the challenge caps)
//     on [Record], [MarshalRecord] and [UnmarshalRecord], and run
//     stepuptest.RunStore against themselves; a shared store saves round
//     trips with the optional [Spender], [MultiGetter] and [PassCounter]. The records a Store receives
//     from the guard are sealed: ID, Kind, Created, Expires and Park in
//     clear, everything else in Record.Sealed, which a Store keeps as it
//     keeps Body (Config.RecordKeys).
//
// The repository's README maps the reference pages (docs/); SECURITY.md
// lists the threats and the rule that answers each.
package stepup
