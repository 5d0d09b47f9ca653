package stepup_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// MFA at sign-in: the login handler checks the password, then hands over
// to guard.SignIn, which starts the login session (Complete) only once
// the second factor is passed, in the browser that entered the password.
// The local emulator stands in for Authsignal; its rule challenges a
// sign-in from a device it has not seen.
func ExampleGuard_SignIn() {
	rules, _ := emulator.ParseRules([]byte(`
actions:
  signIn:
    default: ALLOW
    rules:
      - {id: new-device, when: {field: deviceId, op: unknown}, state: CHALLENGE_REQUIRED}
`))
	emu, err := emulator.New(emulator.Config{Rules: rules, AutoEnroll: true})
	if err != nil {
		log.Fatal(err)
	}
	defer emu.Close()

	appSessions := sessions.NewCookieStore([]byte("another 32-byte key for the app!"))
	srv := httptest.NewUnstartedServer(nil)
	guard, err := stepup.New(stepup.Config{
		Provider: authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emu.APIURL())),
		Sessions: sessions.NewCookieStore([]byte("a 32-byte hash key for the demo!")),
		UserID: func(r *http.Request) (string, error) {
			s, _ := appSessions.Get(r, "app")
			user, _ := s.Values["user"].(string)
			return user, nil
		},
		CallbackURL:      "http://" + srv.Listener.Addr().String() + "/stepup/callback",
		ChallengeOrigins: []string{emu.URL},
		DeviceID: func(r *http.Request) string {
			c, _ := r.Cookie("device") // a long-lived random id your app sets
			if c == nil {
				return ""
			}
			return c.Value
		},
		SignIn: &stepup.SignIn{
			Next: "/home",
			Complete: func(w http.ResponseWriter, r *http.Request, userID string) error {
				s := sessions.NewSession(appSessions, "app") // a new session, never the one the request brought
				s.Values["user"] = userID
				return s.Save(r, w)
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("password") != "alice-password" { // your first factor
			http.Error(w, "wrong user name or password", http.StatusUnauthorized)
			return
		}
		guard.SignIn(w, r, r.PostFormValue("user"))
	})
	mux.Handle("GET /stepup/callback", guard.Callback(mux))
	srv.Config.Handler = mux
	srv.Start()
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(srv.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "device", Value: "d-7f3a"}})
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	navigate := func(method, target, body string) *http.Response {
		req, _ := http.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := browser.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	first := navigate(http.MethodPost, srv.URL+"/login", "user=alice&password=alice-password")
	challenge := first.Header.Get("Location")
	fmt.Println(first.StatusCode, strings.HasPrefix(challenge, emu.URL+"/challenge"))

	back, err := emu.CompleteChallenge(context.Background(), challenge)
	if err != nil {
		log.Fatal(err)
	}
	done := navigate(http.MethodGet, back.String(), "")
	fmt.Println(done.StatusCode, done.Header.Get("Location"))

	// The device is known now: the next sign-in needs no challenge.
	again := navigate(http.MethodPost, srv.URL+"/login", "user=alice&password=alice-password")
	fmt.Println(again.StatusCode, again.Header.Get("Location"))
	// Output:
	// 303 true
	// 303 /home
	// 303 /home
}
