// Package stepupgin puts a stepup.Guard in front of gin routes.
//
// It is a thin translation into the net/http core: the same pipeline, the
// same Store and session, the same errors. Decisions use gin's own route
// match, c.FullPath(), never a second parse of the request path.
//
//	engine := gin.New()
//	engine.Use(stepupgin.PreserveBody(guard))       // first: keep exact bodies past body-reading middleware
//	engine.Use(loadUser, csrfProtect)               // CSRF first: a cross-site POST is never parked
//	if err := stepupgin.Use(guard, engine); err != nil { … } // the policy table, by c.FullPath(); before the routes
//	engine.POST("/transfer", transfer)
//	engine.POST("/settings/email", stepupgin.Require(guard, "changeEmail"), changeEmail)
//	engine.GET("/stepup/callback", stepupgin.Callback(guard, engine))
//	if err := stepupgin.CheckRoutes(guard, engine); err != nil { … }
//
// gin routes before it runs any middleware, so c.FullPath() is the route's
// pattern wherever Middleware is registered, but gin gives a route only the
// middleware registered before it: add Middleware with Use(guard, engine),
// which refuses to come after a protected route, before the routes it
// protects; CheckRoutes reports a protected route whose handler chain lacks
// it. A method changed by a gin middleware after routing is
// refused with a 500 wrapping stepup.ErrMisconfigured; change methods
// before gin routes, by wrapping the engine.
package stepupgin
