// Package stepupecho puts a stepup.Guard in front of echo v4 routes.
//
// It is a thin translation into the net/http core: the same pipeline, the
// same Store and session, the same errors. Decisions use echo's own route
// match, c.Path(), never a second parse of the request path.
//
//	e.Pre(stepupecho.PreserveBody(guard))   // keep exact bodies past body-reading middleware
//	e.Use(middleware.CSRF())                // CSRF first: a cross-site POST is never parked
//	e.Use(stepupecho.Middleware(guard))     // the policy table, by c.Path()
//	e.POST("/transfer", h, stepupecho.Require(guard, "transfer"))
//	e.GET("/stepup/callback", stepupecho.Callback(guard, e))
package stepupecho

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/stepupkit/stepup"
)

// Config configures the echo middleware.
type Config struct {
	// Skipper skips the guard for a request. Optional. Default: never.
	Skipper middleware.Skipper
	// BeforeFunc runs before the guard decides. Optional.
	BeforeFunc middleware.BeforeFunc
	// ErrorHandler receives every refusal as an *echo.HTTPError whose
	// Internal is the *stepup.Error. Optional. Default: the refusal is
	// returned to echo's HTTPErrorHandler.
	ErrorHandler func(c echo.Context, err error) error
}

// Middleware protects the routes of the guard's policy table, matched on
// c.Path(). Register it with e.Use, after CSRF and authentication.
func Middleware(g *stepup.Guard) echo.MiddlewareFunc {
	return MiddlewareWithConfig(g, Config{})
}

// MiddlewareWithConfig is Middleware with options.
func MiddlewareWithConfig(g *stepup.Guard, cfg Config) echo.MiddlewareFunc {
	cfg = withDefaults(cfg)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			rule, ok := g.Match(c.Request().Method, c.Path())
			if !ok {
				return next(c)
			}
			return enforce(c, g, rule, next, cfg)
		}
	}
}

// Require protects one route with action, whatever the table says. It
// panics on an invalid action code, as route registration does.
func Require(g *stepup.Guard, action string, opts ...stepup.RequireOption) echo.MiddlewareFunc {
	return RequireWithConfig(g, Config{}, action, opts...)
}

// RequireWithConfig is Require with options.
func RequireWithConfig(g *stepup.Guard, cfg Config, action string, opts ...stepup.RequireOption) echo.MiddlewareFunc {
	cfg = withDefaults(cfg)
	rule, err := g.NewRule(action, opts...)
	if err != nil {
		panic(err)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			return enforce(c, g, rule, next, cfg)
		}
	}
}

// Callback serves the guard's callback route and replays parked requests
// through e, the whole echo stack again (CSRF included).
func Callback(g *stepup.Guard, e *echo.Echo) echo.HandlerFunc {
	h := g.Callback(e)
	return func(c echo.Context) error {
		h.ServeHTTP(c.Response(), c.Request())
		return nil
	}
}

// PreserveBody keeps the exact body of every request for the guard, so
// middleware that reads bodies (CSRF reading a form field) may run first.
// Register it with e.Pre.
func PreserveBody(g *stepup.Guard) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			g.PreserveBodyOf(c.Request())
			return next(c)
		}
	}
}

// CheckRoutes reports the policies of the guard's table that name no
// route of e, so that a typo in a policy cannot leave a route open.
// Call it after registering the routes.
func CheckRoutes(g *stepup.Guard, e *echo.Echo) error {
	have := map[[2]string]bool{}
	for _, r := range e.Routes() {
		have[[2]string{r.Method, r.Path}] = true
		have[[2]string{"*", r.Path}] = true
	}
	var errs []error
	for _, p := range g.Policies() {
		if !have[[2]string{p.Method, p.Route}] {
			errs = append(errs, fmt.Errorf("stepupecho: policy %s %s: no such echo route", p.Method, p.Route))
		}
	}
	return errors.Join(errs...)
}

func withDefaults(cfg Config) Config {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	return cfg
}

func enforce(c echo.Context, g *stepup.Guard, rule stepup.Rule, next echo.HandlerFunc, cfg Config) error {
	if cfg.BeforeFunc != nil {
		cfg.BeforeFunc(c)
	}
	req := c.Request()
	if names := c.ParamNames(); len(names) > 0 {
		// Path parameters for policy attributes, on a copy of the request.
		req = req.WithContext(req.Context())
		values := c.ParamValues()
		for i, n := range names {
			if i < len(values) {
				req.SetPathValue(strings.TrimPrefix(n, ":"), values[i])
			}
		}
	}
	var nextErr error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.SetRequest(r)
		nextErr = next(c)
	})
	if err := g.Enforce(c.Response(), req, rule, h); err != nil {
		he := ToHTTPError(err)
		if cfg.ErrorHandler != nil {
			return cfg.ErrorHandler(c, he)
		}
		return he
	}
	return nextErr
}

// ToHTTPError turns a refusal into an *echo.HTTPError carrying the public
// code and message, with the *stepup.Error as Internal.
func ToHTTPError(err error) *echo.HTTPError {
	var se *stepup.Error
	if !errors.As(err, &se) {
		return echo.NewHTTPError(http.StatusInternalServerError).SetInternal(err)
	}
	return echo.NewHTTPError(se.Status, map[string]string{"error": se.Code, "message": se.Message}).SetInternal(se)
}
