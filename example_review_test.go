package stepup_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// A wire that Authsignal's rules hold for review: the API client gets 202
// and a status URL, polls it, and once a reviewer approves (here a PATCH of
// the action, as Authsignal's portal does) its poll runs the request, once.
func ExamplePolicy_review() {
	rules, _ := emulator.ParseRules([]byte("actions: {wire: {default: REVIEW_REQUIRED}}\n"))
	emu, err := emulator.New(emulator.Config{Rules: rules, AutoEnroll: true})
	if err != nil {
		log.Fatal(err)
	}
	defer emu.Close()
	client := authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emu.APIURL()))

	srv := httptest.NewUnstartedServer(nil)
	guard, err := stepup.New(stepup.Config{
		Provider:         client,
		CookieKeys:       [][]byte{[]byte("a 32-byte cookie key for a demo!")},
		UserID:           func(*http.Request) (string, error) { return "alice", nil }, // your login here
		CallbackURL:      "http://" + srv.Listener.Addr().String() + "/stepup/callback",
		Policies:         []stepup.Policy{{Method: http.MethodPost, Route: "/wire", Action: "wire", Review: 24 * time.Hour}},
		ChallengeOrigins: []string{emu.URL},
		WebhookSecret:    "whsec-demo",          // for guard.Webhook(), where Authsignal delivers its webhooks
		ReviewPoll:       10 * time.Millisecond, // how often Authsignal may be asked about a review; short for the example (default 5 s)
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /wire", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "wired %s", body)
	})
	handler := guard.Middleware(mux)
	mux.Handle("GET /stepup/callback", guard.Callback(handler)) // serves the status URL too
	mux.Handle("POST /stepup/webhook", guard.Webhook())
	srv.Config.Handler = handler
	srv.Start()
	defer srv.Close()

	jar, _ := cookiejar.New(nil) // the API client keeps the guard's cookie: the review is bound to it
	api := &http.Client{Jar: jar}
	call := func(method, path, body string) (int, string, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Accept", "application/json")
		resp, err := api.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}

	status, location, _ := call(http.MethodPost, "/wire", "60000 to bob")
	fmt.Println(status, strings.HasPrefix(location, "/stepup/callback?review="))
	status, _, _ = call(http.MethodGet, location, "")
	fmt.Println(status, "while it waits")

	id := strings.TrimPrefix(location, "/stepup/callback?review=")
	if _, err := client.UpdateAction(context.Background(), "alice", "wire", id, authsignal.StateReviewSucceeded); err != nil {
		log.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // past ReviewPoll: the next poll asks Authsignal again
	status, _, body := call(http.MethodGet, location, "")
	fmt.Println(status, body)
	status, _, body = call(http.MethodGet, location, "")
	fmt.Println(status, body, "(kept, not run again)")
	// Output:
	// 202 true
	// 202 while it waits
	// 200 wired 60000 to bob
	// 200 wired 60000 to bob (kept, not run again)
}
