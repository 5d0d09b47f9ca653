// Package stepupchi puts a stepup.Guard in front of go-chi/chi v5 routes.
//
// It is a thin translation into the net/http core: the same pipeline, the
// same Store and session, the same errors. Decisions use chi's own route
// match, chi.RouteContext(ctx).RoutePattern() and the method chi
// dispatched on, never a second parse of the request path.
//
//	r := chi.NewRouter()
//	r.Use(stepupchi.PreserveBody(guard)) // keep exact bodies past body-reading middleware
//	r.Use(csrfProtect)                   // CSRF first: a cross-site POST is never parked
//	r.Group(func(r chi.Router) {
//		r.Use(stepupchi.Middleware(guard)) // the policy table, by chi's route pattern
//		r.Post("/transfer", transfer)
//		r.With(stepupchi.Require(guard, "changeEmail")).Post("/settings/email", changeEmail)
//	})
//	r.Get("/stepup/callback", stepupchi.Callback(guard, r).ServeHTTP)
//	if err := stepupchi.CheckRoutes(guard, r); err != nil { … }
//
// chi runs the middleware registered with r.Use on a router before that
// router matches a route, so the pattern is known only to inline middleware
// (r.With, or r.Use inside r.Group), which chi runs with the route's
// handler. Middleware belongs there. Registered with r.Use on a router it
// cannot trust the pattern, and refuses with a 500 wrapping
// stepup.ErrMisconfigured every request chi routes somewhere.
package stepupchi
