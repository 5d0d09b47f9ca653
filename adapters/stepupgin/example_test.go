package stepupgin_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupgin"
	"github.com/stepupkit/stepup/authsignal"
)

// The policy table by c.FullPath(), a route of its own with Require, and
// the callback replaying through the whole engine.
func Example() {
	gin.SetMode(gin.ReleaseMode)
	guard, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("secret", authsignal.WithBaseURL("http://127.0.0.1:1")), // never reached here
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "", nil }, // nobody is logged in
		CallbackURL: "https://bank.example/stepup/callback",
		Policies:    []stepup.Policy{{Method: http.MethodPost, Route: "/accounts/:id/transfer", Action: "transfer"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	engine := gin.New()
	engine.Use(stepupgin.PreserveBody(guard))
	if err := stepupgin.Use(guard, engine); err != nil { // before the routes it protects
		log.Fatal(err)
	}
	engine.POST("/accounts/:id/transfer", func(c *gin.Context) { c.String(http.StatusOK, "transferred from %s", c.Param("id")) })
	engine.POST("/settings/email", stepupgin.Require(guard, "changeEmail"), func(c *gin.Context) { c.String(http.StatusOK, "changed") })
	engine.GET("/stepup/callback", stepupgin.Callback(guard, engine))
	if err := stepupgin.CheckRoutes(guard, engine); err != nil {
		log.Fatal(err)
	}

	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/accounts/42/transfer", strings.NewReader("amount=5000"))
	req.Header.Set("Accept", "application/json")
	engine.ServeHTTP(rec, req)
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	// Output: 401 {"error":"login_required","message":"Please sign in to continue."}
}

// CheckRoutes finds a GET policy over a handler registered for every
// method.
func ExampleCheckRoutes() {
	gin.SetMode(gin.ReleaseMode)
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
	engine := gin.New()
	engine.Use(stepupgin.Middleware(guard, engine))
	engine.Any("/admin", func(*gin.Context) {})
	fmt.Println(stepupgin.CheckRoutes(guard, engine) != nil)
	// Output: true
}

// Use adds the policy table's middleware in the one place it protects
// anything, before the routes, and refuses to come after a protected one.
func ExampleUse() {
	gin.SetMode(gin.ReleaseMode)
	guard, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("secret"),
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "", nil },
		CallbackURL: "https://bank.example/stepup/callback",
		Policies:    []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	late := gin.New()
	late.POST("/transfer", func(*gin.Context) {})
	fmt.Println(stepupgin.Use(guard, late))

	engine := gin.New()
	fmt.Println(stepupgin.Use(guard, engine))
	engine.POST("/transfer", func(*gin.Context) {})
	engine.GET("/stepup/callback", stepupgin.Callback(guard, engine))
	fmt.Println(stepupgin.CheckRoutes(guard, engine))
	// Output:
	// stepupgin: Use: POST /transfer registered before the guard's middleware, which gin would not run for them: call stepupgin.Use before registering the routes
	// <nil>
	// <nil>
}
