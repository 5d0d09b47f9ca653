package stepupchi_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupchi"
	"github.com/stepupkit/stepup/authsignal"
)

// The policy table inline in a group, where chi has routed; a route of its
// own with Require; the callback replaying through the whole router.
func Example() {
	guard, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("secret", authsignal.WithBaseURL("http://127.0.0.1:1")), // never reached here
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "", nil }, // nobody is logged in
		CallbackURL: "https://bank.example/stepup/callback",
		Policies:    []stepup.Policy{{Method: http.MethodPost, Route: "/accounts/{id}/transfer", Action: "transfer"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	transfer := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "transferred from", chi.URLParam(r, "id"))
	}
	changeEmail := func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "changed") }

	r := chi.NewRouter()
	r.Use(stepupchi.PreserveBody(guard))
	r.Group(func(r chi.Router) {
		r.Use(stepupchi.Middleware(guard))
		r.Post("/accounts/{id}/transfer", transfer)
		r.With(stepupchi.Require(guard, "changeEmail")).Post("/settings/email", changeEmail)
	})
	r.Get("/stepup/callback", stepupchi.Callback(guard, r).ServeHTTP)
	if err := stepupchi.CheckRoutes(guard, r); err != nil {
		log.Fatal(err)
	}

	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/accounts/42/transfer", strings.NewReader("amount=5000"))
	req.Header.Set("Accept", "application/json")
	r.ServeHTTP(rec, req)
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	// Output: 401 {"error":"login_required","message":"Please sign in to continue."}
}

// CheckRoutes finds a GET policy over a handler registered for every
// method.
func ExampleCheckRoutes() {
	guard, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("secret"),
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "", nil },
		CallbackURL: "https://bank.example/stepup/callback",
		Policies:    []stepup.Policy{{Method: http.MethodGet, Route: "/admin", Action: "admin"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	r := chi.NewRouter()
	r.With(stepupchi.Middleware(guard)).HandleFunc("/admin", func(http.ResponseWriter, *http.Request) {})
	fmt.Println(stepupchi.CheckRoutes(guard, r) != nil)
	// Output: true
}
