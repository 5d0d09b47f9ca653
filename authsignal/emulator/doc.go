// Package emulator is a local, faithful Authsignal Server API for
// development and tests: the REST API under /v1, a hosted challenge page
// under /challenge, simple per-action rules, and deterministic controls (a
// clock, fault injection, a view of what was tracked and of the codes sent).
//
// It follows the contract in the project's AUTHSIGNAL.md and deliberately
// does not import package authsignal: it has its own wire structs, so it
// checks the client independently.
//
// # Starting it
//
//	srv, err := emulator.New(emulator.Config{Rules: rules, Users: []emulator.User{{ID: "alice", Email: "alice@example.com"}}})
//	defer srv.Close()
//	client := authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(srv.APIURL()))
//
// New listens on 127.0.0.1 at a free port; NewHandler returns the bare
// http.Handler to mount at the root of a server of your own. The program
// cmd/authsignal-emulator runs it standalone.
//
// The zero Config is faithful to a tenant without rules: every action is
// ALLOW, and a challenge for a user without an authenticator becomes ALLOW.
// Development mode, the default of cmd/authsignal-emulator, challenges:
//
//	emulator.Config{AutoEnroll: true, ChallengeByDefault: true, DevMode: true}
//
// enrols every user with email OTP on first sight and makes every action
// that no rule decides CHALLENGE_REQUIRED. When a challenge does become ALLOW
// for a user who is not enrolled, the track's log line says so (why="…").
//
// # API
//
// Every path except the hosted page requires HTTP Basic auth with the secret
// as user name and an empty password, checked (in constant time) before
// routing: a bad key gets 401 unauthorized on any path, unknown ones
// included. Errors are {"error", "errorCode", "errorDescription"} with the
// same value in error and errorCode: unauthorized (401), invalid_request
// (400, or 413 for a body over 1 MiB), not_found (404), method_not_allowed
// (405). Request bodies must be JSON objects sent as application/json. Every
// key the API reference or an official SDK (Node 2.21, Go v2, Python, Ruby)
// sends is accepted, spelled exactly, and kept where the API returns it; a
// key none of them knows, or a wrong type, is invalid_request, so that a
// typo in a client shows.
//
//	POST   /v1/users/{userId}/actions/{action}                  track
//	GET    /v1/users/{userId}/actions/{action}/{idempotencyKey} get an action
//	PATCH  /v1/users/{userId}/actions/{action}/{idempotencyKey} {"state": …}
//	GET    /v1/users/{userId}/actions?codes=&fromDate=&state=   query a user's actions
//	POST   /v1/validate                                         {"token", "userId"?, "action"?}
//	GET    /v1/users/{userId}                                   get a user
//	PATCH  /v1/users/{userId} (or POST, as the Ruby SDK sends)  update a user
//	DELETE /v1/users/{userId}[?actions=true]                    delete a user
//	GET    /v1/users?username=&email=&phoneNumber=&token=&limit=&lastEvaluatedUserId=
//	GET    /v1/users/{userId}/authenticators                    list authenticators
//	POST   /v1/users/{userId}/authenticators                    enrol a verified authenticator
//	DELETE /v1/users/{userId}/authenticators/{userAuthenticatorId}
//	GET    /v1/__emulator/tracked, GET /v1/__emulator/outbox    emulator only
//
// Track also takes customDomain (Node SDK) and crypto (Go SDK): both are kept
// in Tracked, neither changes the decision or the URL.
//
// Path segments are URL-escaped: a user id "a/b" is sent as "a%2Fb".
//
// Track evaluates the rules. A client-provided idempotencyKey is honoured:
// tracking the same user, action and key again returns the stored action
// (with its current state) instead of creating one. The answer carries
// state, idempotencyKey, url (the hosted page, "<base>/challenge?token=…",
// for every state), token, isEnrolled, enrolledVerificationMethods,
// allowedVerificationMethods, defaultVerificationMethod and ruleIds. A
// CHALLENGE_REQUIRED decision for a user with no authenticator becomes ALLOW
// with isEnrolled false, unless the deciding rule has enrol: true.
//
// Tokens are HS256 JWTs signed with the secret: sub (user id), iat,
// exp = iat+600, iss (the base URL), scope, and other {tenantId,
// publishableKey, userId, actionCode, idempotencyKey}. The track token and
// the token of the redirect name the same action.
//
// Validate always answers 200 for a well-formed request. A garbled or badly
// signed token gives isValid false with error "Token is invalid.", an expired
// one (by Config.Now) "Token has expired.", a token of another user "User is
// invalid.", of another action "Action is invalid.", of a deleted or evicted
// action "Action not found.". Otherwise it reports the action's current
// state, stateUpdatedAt, userId, action and its deprecated twin actionCode,
// idempotencyKey and verificationMethod, with isValid true only for
// CHALLENGE_SUCCEEDED and REVIEW_SUCCEEDED. Tokens are not single-use:
// validating twice gives the same answer twice; refusing a replay is the
// client library's job.
//
// PATCH on an action sets any of the eight action states (REVIEW is read as
// REVIEW_REQUIRED), from any state, as the API does: it documents no
// transition graph, and the Node SDK's own tests move CHALLENGE_REQUIRED to
// REVIEW_REQUIRED. Any other value is invalid_request. A PATCH that changes
// the state drops the code the page may have sent. Only the secret key's holder can PATCH; what
// a step-up guard relies on is unchanged: validate calls a token valid only
// in a succeeded state, and only for its own user, action and idempotency
// key, and nothing the hosted page offers sets CHALLENGE_SUCCEEDED without
// the right code.
//
// Webhooks: with Config.WebhookURL (or SetWebhook) every change of an
// action's state, a PATCH or the page settling a challenge, is delivered
// there as a signed action.updated webhook (X-Signature-V2), in order, one
// attempt each; Deliveries lists them, WaitWebhooks waits for them
// (webhooks.go). cmd/authsignal-emulator: -webhook-url, -webhook-secret.
//
// Query actions lists the user's actions created since fromDate (RFC 3339;
// default, and earliest, 30 days ago), filtered by comma-separated codes and
// by state, newest first, with actionCode, idempotencyKey, createdAt,
// updatedAt, state, stateUpdatedAt, verificationMethod, userAgent and
// ipAddress.
//
// GET on an unknown user answers isEnrolled false. An update creates the
// user and takes email, emailVerified, phoneNumber, phoneNumberVerified,
// username, displayName, custom, locale and defaultVerificationMethod (one
// of the user's enrolled methods); a null or missing key leaves the value
// alone, "" clears it, and a changed email or phone number is unverified
// unless the same request says it is verified. It answers the user with
// userId; GET answers it without. DELETE removes the user and its
// authenticators, and with ?actions=true its actions too (as the API
// documents; without it a token of a completed challenge still validates),
// and answers {"success": true}.
//
// Query users matches username, email and phoneNumber exactly (all given
// must hold); token, a token this emulator issued, selects its user and is
// answered as tokenPayload (an invalid one is invalid_request). Users come in
// user id order, limit (default 100, at most 1000) per page, with
// lastEvaluatedUserId only when more remain. Unknown query parameters are
// invalid_request.
//
// Authenticators: the emulator runs EMAIL_OTP and SMS only, one authenticator
// per method per user, whose email or phone number is the user's (where the
// page sends codes). Enrolling takes verificationMethod (or the deprecated
// oobChannel), email (EMAIL_OTP), phoneNumber (SMS, E.164), otpUri and
// isDefault; it sets the user's email or phone number, marks it verified,
// and answers {"authenticator": {…}}. A documented method the page cannot
// run (EMAIL_MAGIC_LINK, AUTHENTICATOR_APP, PASSKEY, WHATSAPP) is
// invalid_request rather than an authenticator nobody could use. Ids stay
// stable while the method stays enrolled; deleting the last authenticator
// leaves the user not enrolled. With Config.AutoEnroll every user has an
// EMAIL_OTP authenticator that deleting does not remove.
//
// Injected 429 and 503 faults carry Retry-After: 1.
//
// # Rules
//
// Rules come from YAML or JSON (ParseRules, LoadRules) or are built in Go.
// Unknown keys, fields, ops and states are errors naming the entry.
//
//	defaultState: ALLOW            # actions not listed below; default ALLOW
//	actions:
//	  transfer:
//	    default: ALLOW             # when no rule matches; default: defaultState
//	    rules:                     # in order, first match wins
//	      - id: large-transfer
//	        when: {field: custom.amount, op: gt, value: 1000}
//	        state: CHALLENGE_REQUIRED
//	      - id: new-device
//	        when: {field: deviceId, op: unknown}
//	        state: CHALLENGE_REQUIRED
//	      - id: bad-network
//	        when: {field: ipAddress, op: in, value: ["203.0.113.0/24", "198.51.100.7"]}
//	        state: BLOCK
//	      - id: vip-small            # a list of conditions must all hold
//	        when:
//	          - {field: custom.tier, op: eq, value: vip}
//	          - {field: custom.amount, op: lte, value: 100}
//	        state: ALLOW
//	  changeEmail: {default: CHALLENGE_REQUIRED, enrol: true}
//	  wire: {default: REVIEW_REQUIRED}
//
// States: ALLOW, BLOCK, CHALLENGE_REQUIRED, REVIEW_REQUIRED (alias REVIEW).
// Fields: custom.<key>[.<key>…], deviceId, ipAddress, userAgent, email,
// phoneNumber, username, scope, locale. Ops:
//
//	eq, ne              equal / not equal: numbers numerically (numeric strings too), strings and booleans exactly
//	gt, gte, lt, lte    numeric; the request value may be a JSON number or a numeric string
//	in                  equal to one of a list; for ipAddress, inside one of a list of CIDRs or IPs
//	contains            a string containing the value, or a list containing an equal element
//	exists              value true (default) or false: whether the field is present
//	unknown             deviceId or ipAddress never seen for this user (absent counts as unknown)
//
// A missing field matches nothing but exists: false and unknown. A device or
// IP address is "seen" once a track carrying it ended ALLOW or
// CHALLENGE_SUCCEEDED. enrol: true (on a rule, or on an action for its
// default) lets users without an authenticator be challenged: the hosted
// page first enrols an email OTP.
//
// methods: [PASSKEY, AUTHENTICATOR_APP, EMAIL_OTP, SMS] on an action lists
// the verification methods it accepts, whichever rule decides its state
// (see Verification methods below).
//
// # Hosted challenge page
//
// GET /challenge?token=… shows what is being approved (the action code
// for people, "changeEmail" as "Change email", and the track's custom
// attributes as a list) and a choice of the user's methods the action
// accepts (email OTP, SMS OTP, authenticator app, passkey). Sending puts a 6-digit code from crypto/rand in the outbox, valid
// five minutes by Config.Now. In DevMode the page shows the code and fills
// it in, and for a user with one method it sends the code when it is
// first shown: Verify is the one click left.
// The right code settles the action as CHALLENGE_SUCCEEDED; the third wrong
// one as CHALLENGE_FAILED; Cancel leaves the state as it is. Each then
// redirects (303) to the track's redirectUrl with token=<fresh token>
// appended to its query, or, without a redirectUrl, to /challenge/done,
// which shows the token (in popup and window modes, see below, to
// /challenge/done or /challenge/left, which hand over the result). A user with no authenticator (an enrol rule, or an
// ALLOW action sent to the URL to enrol, as Authsignal's helpers do) first
// gives an email address; verifying the code enrols it and settles the
// action, whatever its state was, as CHALLENGE_SUCCEEDED with
// verificationMethod EMAIL_OTP: as with Authsignal, the token of the
// redirect then validates like that of a passed challenge, and a guard
// treats the enrolment as the step-up. Cancel enrols nothing.
//
// Stable element ids and names for browser tests:
//
//	button[name=method][value=EMAIL_OTP]  choose email OTP (value SMS: text message,
//	                                      AUTHENTICATOR_APP: the app's code)
//	button#passkey                        use (or, when enrolling, create) a passkey
//	#passkey-error                        why the passkey was refused
//	input#email                           email address, when enrolling
//	form[action="/challenge/enrol"]       the method to set up, once the email is verified
//	  button[name=method][value=…]        EMAIL_OTP, AUTHENTICATOR_APP, PASSKEY
//	img#totp-qr, #totp-secret             the authenticator app's QR code and secret
//	input#code, button#verify             code entry
//	button#resend                         send a new code
//	button#cancel                         cancel (button#continue when there is nothing to verify)
//	#dev-code                             the code, in DevMode
//	#what, #details                       what is approved: the action, the custom attributes
//	#error                                the last error
//	#state, #token                        on the done page
//
// The page sets no cookie, so that it works in a cross-site iframe where
// the browser blocks third-party cookies. Its forms are bound to the
// challenge instead: each carries the challenge token and an HMAC of it
// with the secret (compared in constant time), and a form sent from another
// site is refused (Sec-Fetch-Site, else Origin, as net/http's
// CrossOriginProtection checks them). Every value is escaped by
// html/template; responses carry Cache-Control: no-store, Referrer-Policy:
// no-referrer, and a CSP with default-src 'none' and no script in redirect
// mode except the passkey script where a passkey is offered.
//
// # Verification methods
//
// Besides codes by email and SMS, the page runs an authenticator app
// (AUTHENTICATOR_APP: TOTP as github.com/pquerna/otp computes it, 30-second
// steps, 6 digits, SHA-1) and passkeys (PASSKEY: a WebAuthn relying party
// built on github.com/go-webauthn/webauthn). validate and get action report
// the method that settled the challenge as verificationMethod.
//
// An app's code is accepted for the step of Config.Now and one step either
// side, once: a code of a step at or before the last one accepted for the
// user is refused. A wrong code counts as one of the three attempts. Users
// get an app through Config.Users (User.TOTPSecret), the API (enrol
// AUTHENTICATOR_APP with its otpUri) or the page.
//
// Passkeys are registered on the page only. The relying party's ID is the
// host of the page's base URL (Config.PublicURL, else the request's host)
// and its one origin that base URL; both ceremonies require user
// verification, and each ceremony takes one answer. Browsers refuse an IP
// address as the relying party and allow http on localhost only: serve the
// page as http://localhost:port (New's URL is 127.0.0.1, so browser tests
// set PublicURL; see examples/internal/emulatormethods). The page's script
// calls navigator.credentials.create or get with the options of
// POST /challenge/passkey/begin and posts the answer (toJSON) to
// POST /challenge/passkey/finish, form-encoded with the page's token and
// csrf. A refused passkey counts as an attempt. In popup mode (an iframe),
// a passkey needs the framing page's iframe to allow
// publickey-credentials-get and -create; the browser SDK's iframe does
// (@authsignal/browser sets both), but only window and redirect mode are
// tested with passkeys in a browser here.
//
// An action's methods (rules) restrict all of this: track answers
// allowedVerificationMethods = the user's enrolled methods that the action
// accepts (without methods on the action: EMAIL_OTP, SMS and whatever else
// the user has), and for a user not enrolled the action's methods the page
// can set up; the page offers those only and refuses any other. When an
// enrolled user has none of them, the page offers to set one up after a
// code to the email address the user has enrolled, and, without an
// enrolled email, nothing but Cancel (allowedVerificationMethods is then
// empty).
//
// Enrolment on the page (a user with no authenticator, or with none the
// action accepts) starts with a verified email address: the user gives it
// (or has it, fixed) and enters the code sent there. When the action accepts
// only email OTP (or names no methods) that enrols email OTP and settles the
// action; otherwise the user then picks a method the action accepts: email
// codes (done), an authenticator app (the page shows its QR code, a PNG
// data: URL, and its secret; the app's first code enrols it), or a passkey
// (registered in the browser). The action then settles as
// CHALLENGE_SUCCEEDED with that method, and the redirect carries a token as
// after a challenge.
//
// # Popup and window modes (Authsignal's browser SDK)
//
// The page speaks the pre-built UI protocol of @authsignal/browser.
// launch(url, {mode: "popup"}) loads url+"&mode=popup" in an iframe,
// launch(url, {mode: "window"}) in a window.open window with the same
// "&mode=popup" ("mode=window" is accepted too). In these modes the page
// keeps the mode through its forms and runs one inline script, allowed by a
// fresh CSP nonce, that posts to its parent (iframe) or opener (window)
// JSON strings, as the SDK expects, and raw height objects:
//
//	{"event":"AUTHSIGNAL_READY"}                  each page, when shown
//	{height: n} (an object)                       each page: its height, on load and resize
//	{"event":"AUTHSIGNAL_CLOSE_POPUP","token":…}  the challenge ended: verified, failed, or
//	                                              Continue when there was nothing to verify
//	{"event":"AUTHSIGNAL_CLOSE_POPUP"}            Cancel: the SDK resolves {token: undefined},
//	                                              as when the user closes the popup
//
// The token is a fresh one, validated by the application's backend as in
// redirect mode; the page does not redirect to the redirectUrl. Messages
// are posted only to the origins in Config.AppOrigins and to the origin of
// the track's redirectUrl, one postMessage per origin with that origin as
// the target: the browser delivers none to a window of any other origin,
// whoever framed or opened the page. With no such origin the page runs no
// script and the done page shows the token.
//
// Only Config.AppOrigins (the -app-origin flag of cmd/authsignal-emulator)
// may frame the page: CSP frame-ancestors lists them. Without them the page
// sends frame-ancestors 'none' and X-Frame-Options: DENY, so popup mode
// needs them; window and redirect modes work without.
//
// # Controls for tests
//
// Tracked, Outbox and LastCode show what happened; EnrollUser enrols a user;
// SetFault and ClearFaults make API requests slow, fail with a status,
// answer broken JSON or drop the connection; Requests counts API requests;
// CompleteChallenge, CompleteChallengeWith (a named method: EMAIL_OTP, SMS,
// AUTHENTICATOR_APP), CancelChallenge and FailChallenge drive the hosted
// page over HTTP as a browser would; passkeys need a browser. Config.Now controls time. Stored actions,
// API-created users and the outbox are bounded by Config.MaxActions.
// Nothing is persisted.
package emulator
