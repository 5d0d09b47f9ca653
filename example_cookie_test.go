package stepup_test

import (
	"encoding/base64"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// A guard that seals its own cookie with CookieKeys: no gorilla Store,
// and less work per request than a CookieStore's codecs. A key is 32
// random bytes, kept as secret as any session key: make one with
// `openssl rand -base64 32` and pass it in from the environment or a
// secret manager. To rotate, put the new key first and keep the old one
// after it until the cookies it sealed have expired.
func ExampleConfig_cookieKeys() {
	// In production: base64.StdEncoding.DecodeString(os.Getenv("STEPUP_COOKIE_KEY")).
	current, _ := base64.StdEncoding.DecodeString("6MNYSydSun1dNYbuJq7Mi6o8piOD8cb2i9fl0vi6Fxo=")
	previous, _ := base64.StdEncoding.DecodeString("WadLrK6aXGY1L6pkqlCl9BrR0iMpFEEizUsv7b0aTmk=")

	rules, _ := emulator.ParseRules([]byte("actions:\n  transfer: {default: CHALLENGE_REQUIRED}\n"))
	emu, err := emulator.New(emulator.Config{Rules: rules, AutoEnroll: true})
	if err != nil {
		log.Fatal(err)
	}
	defer emu.Close()

	guard, err := stepup.New(stepup.Config{
		Provider:         authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emu.APIURL())),
		CookieKeys:       [][]byte{current, previous}, // current seals; both open
		UserID:           func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL:      "https://app.example/stepup/callback",
		Policies:         []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}},
		ChallengeOrigins: []string{emu.URL},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /transfer", func(http.ResponseWriter, *http.Request) {})
	handler := guard.Middleware(mux)

	// A parked transfer: its id goes into the guard's sealed cookie.
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "https://app.example/transfer", nil)
	r.Header.Set("Accept", "text/html")
	handler.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		fmt.Println(w.Code, c.Name, c.MaxAge, c.HttpOnly, c.Secure, c.SameSite == http.SameSiteLaxMode)
	}

	// A key that is not a 32-byte secret is refused.
	_, err = stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("secret"),
		CookieKeys:  [][]byte{current, []byte("password")},
		UserID:      func(*http.Request) (string, error) { return "", nil },
		CallbackURL: "https://app.example/stepup/callback",
	})
	fmt.Println(err)
	// Output:
	// 303 stepup 600 true true true
	// stepup: Config.CookieKeys[1] is 8 bytes; each key must be a random secret of at least 32 bytes (openssl rand -base64 32)
}
