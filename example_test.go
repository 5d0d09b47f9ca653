package stepup_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// A net/http application protecting POST /transfer: a large transfer is
// parked, the user completes the challenge, and the callback replays it.
// The local emulator stands in for Authsignal.
func Example() {
	rules, _ := emulator.ParseRules([]byte(`
actions:
  transfer:
    default: ALLOW
    rules:
      - {id: large, when: {field: custom.amount, op: gt, value: 1000}, state: CHALLENGE_REQUIRED}
`))
	emu, err := emulator.New(emulator.Config{Rules: rules, AutoEnroll: true})
	if err != nil {
		log.Fatal(err)
	}
	defer emu.Close()

	srv := httptest.NewUnstartedServer(nil)
	guard, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emu.APIURL())),
		Sessions:    sessions.NewCookieStore([]byte("a 32-byte hash key for the demo!")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil }, // your login here
		CallbackURL: "http://" + srv.Listener.Addr().String() + "/stepup/callback",
		Policies: []stepup.Policy{{
			Method: http.MethodPost, Route: "/transfer", Action: "transfer",
			Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: stepup.TypeNumber}},
		}},
		ChallengeOrigins: []string{emu.URL}, // the emulator instead of Authsignal's hosts
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /transfer", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "transferred %s to %s", r.PostFormValue("amount"), r.PostFormValue("to"))
	})
	handler := guard.Middleware(mux)
	mux.Handle("GET /stepup/callback", guard.Callback(handler))
	srv.Config.Handler = handler
	srv.Start()
	defer srv.Close()

	// A browser: cookies kept, redirects shown.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	navigate := func(method, target, body string) *http.Response {
		req, _ := http.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := browser.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		return resp
	}

	small := navigate(http.MethodPost, srv.URL+"/transfer", "amount=50&to=bob")
	b, _ := io.ReadAll(small.Body)
	fmt.Println(small.StatusCode, string(b))

	large := navigate(http.MethodPost, srv.URL+"/transfer", "amount=5000&to=bob")
	challenge := large.Header.Get("Location")
	fmt.Println(large.StatusCode, strings.HasPrefix(challenge, emu.URL+"/challenge"))

	// The user completes the challenge; the page sends them back.
	back, err := emu.CompleteChallenge(context.Background(), challenge)
	if err != nil {
		log.Fatal(err)
	}
	done := navigate(http.MethodGet, back.String(), "")
	b, _ = io.ReadAll(done.Body)
	fmt.Println(done.StatusCode, string(b))

	again := navigate(http.MethodGet, back.String(), "") // a refresh runs nothing again
	b, _ = io.ReadAll(again.Body)
	fmt.Println(again.StatusCode, string(b))
	// Output:
	// 200 transferred 50 to bob
	// 303 true
	// 200 transferred 5000 to bob
	// 200 transferred 5000 to bob
}

func ExampleGuard_Require() {
	guard, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("secret"),
		Sessions:    sessions.NewCookieStore([]byte("a 32-byte hash key for the demo!")),
		UserID:      func(*http.Request) (string, error) { return "", nil },
		CallbackURL: "https://app.example/stepup/callback",
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	deleteUser := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	mux.Handle("DELETE /users/{id}", guard.Require("deleteUser", stepup.WithRemember(time.Minute),
		stepup.WithAttributes(stepup.Attribute{Name: "target", From: stepup.FromPath, Key: "id"}))(deleteUser))

	// Nobody is logged in here: the guard refuses before tracking anything.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/users/42", nil))
	fmt.Println(rec.Code)
	// Output: 401
}

func ExampleVerificationFrom() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := stepup.VerificationFrom(r.Context()); ok {
			fmt.Fprintf(w, "%s verified for %s by %s", v.Action, v.UserID, v.How)
		}
	})
	http.Handle("POST /transfer", handler) // behind guard.Middleware or guard.Require
}

// A user with no second factor: Authsignal answers ALLOW with isEnrolled
// false. By default the guard refuses; with UnenrolledEnroll it sends the
// browser to enrol and then runs the parked request once.
func ExampleWithUnenrolled() {
	emu, err := emulator.New(emulator.Config{}) // nobody enrolled
	if err != nil {
		log.Fatal(err)
	}
	defer emu.Close()

	srv := httptest.NewUnstartedServer(nil)
	guard, err := stepup.New(stepup.Config{
		Provider:         authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emu.APIURL())),
		Sessions:         sessions.NewCookieStore([]byte("a 32-byte hash key for the demo!")),
		UserID:           func(*http.Request) (string, error) { return "newbie", nil },
		CallbackURL:      "http://" + srv.Listener.Addr().String() + "/stepup/callback",
		ChallengeOrigins: []string{emu.URL},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	done := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "done") })
	mux.Handle("POST /close-account", guard.Require("closeAccount")(done))
	mux.Handle("POST /change-email", guard.Require("changeEmail", stepup.WithUnenrolled(stepup.UnenrolledEnroll))(done))
	mux.Handle("GET /stepup/callback", guard.Callback(mux))
	srv.Config.Handler = mux
	srv.Start()
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	navigate := func(method, target string) *http.Response {
		req, _ := http.NewRequest(method, target, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := browser.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		return resp
	}

	fmt.Println(navigate(http.MethodPost, srv.URL+"/close-account").StatusCode) // the default: refused

	enrol := navigate(http.MethodPost, srv.URL+"/change-email")
	fmt.Println(enrol.StatusCode, strings.HasPrefix(enrol.Header.Get("Location"), emu.URL+"/challenge"))
	back, err := emu.CompleteChallenge(context.Background(), enrol.Header.Get("Location")) // enrols an email OTP
	if err != nil {
		log.Fatal(err)
	}
	resp := navigate(http.MethodGet, back.String())
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(b))
	// Output:
	// 403
	// 303 true
	// 200 done
}

// An application checks at start-up that the guard can talk to Authsignal:
// here the key is not the one the (emulated) tenant expects.
func ExampleGuard_CheckProvider() {
	emu, err := emulator.New(emulator.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer emu.Close()
	guard, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("not-the-tenant's-key", authsignal.WithBaseURL(emu.APIURL())),
		CookieKeys:  [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
	})
	if err != nil {
		log.Fatal(err)
	}
	err = guard.CheckProvider(context.Background())
	fmt.Println(errors.Is(err, stepup.ErrMisconfigured))
	// Output: true
}

// An action that accepts only an email code, and shows the amount to the
// user: an API client learns both from the 401, and a token of a challenge
// completed by SMS runs nothing.
func ExampleWithMethods() {
	rules, _ := emulator.ParseRules([]byte("actions:\n  transfer: {default: CHALLENGE_REQUIRED}\n"))
	emu, err := emulator.New(emulator.Config{Rules: rules, Users: []emulator.User{
		{ID: "alice", PhoneNumber: "+64270000001", Methods: []string{emulator.MethodSMS}}, // alice has only SMS
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer emu.Close()

	srv := httptest.NewUnstartedServer(nil)
	guard, err := stepup.New(stepup.Config{
		Provider:         authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emu.APIURL())),
		Sessions:         sessions.NewCookieStore([]byte("a 32-byte hash key for the demo!")),
		UserID:           func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL:      "http://" + srv.Listener.Addr().String() + "/stepup/callback",
		ChallengeOrigins: []string{emu.URL},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /transfer", guard.Require("transfer",
		stepup.WithMethods(stepup.MethodEmailOTP),
		stepup.WithAttributes(stepup.Attribute{Name: "amount", From: stepup.FromJSON, Key: "amount", Type: stepup.TypeNumber, Display: true}),
	)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "transferred") })))
	srv.Config.Handler = mux
	srv.Start()
	defer srv.Close()

	send := func(token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/transfer", strings.NewReader(`{"amount": 5000}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if token != "" {
			req.Header.Set(stepup.TokenHeader, token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		var doc map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		return resp.StatusCode, doc
	}

	status, challenge := send("")
	fmt.Println(status, challenge["methods"], challenge["display"])
	back, err := emu.CompleteChallenge(context.Background(), challenge["url"].(string)) // by SMS
	if err != nil {
		log.Fatal(err)
	}
	status, refusal := send(back.Query().Get("token"))
	fmt.Println(status, refusal["error"])
	fmt.Println(refusal["message"])
	// Output:
	// 401 [EMAIL_OTP] map[amount:5000]
	// 403 wrong_method
	// You verified with a text message code, but this action accepts only an email code. Nothing was done; verify again with that, or start again.
}
