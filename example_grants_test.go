package stepup_test

import (
	"fmt"
	"html"
	"log"
	"net/http"

	"github.com/stepupkit/stepup"
)

// A settings page lists the user's remembered verifications, each with a
// revoke button; logout ends the grants of the browser that logs out
// (Forget) or, with "everywhere", of every browser (Revoke).
func ExampleGuard_Grants() {
	var guard *stepup.Guard                                   // built with stepup.New
	var currentUser func(r *http.Request) string              // the application's login
	var endLogin func(w http.ResponseWriter, r *http.Request) // the application's logout
	mux := http.NewServeMux()

	mux.HandleFunc("GET /settings", func(w http.ResponseWriter, r *http.Request) {
		grants, err := guard.Grants(r.Context(), currentUser(r))
		if err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		for _, g := range grants {
			fmt.Fprintf(w, `<form method=post action=/settings/revoke><input type=hidden name=action value=%q>`+
				`%s, verified by %s until %s <button>Revoke</button></form>`,
				html.EscapeString(g.Action), html.EscapeString(g.Action), html.EscapeString(g.Method),
				g.Expires.Format("15:04"))
		}
	})
	mux.HandleFunc("POST /settings/revoke", func(w http.ResponseWriter, r *http.Request) {
		if err := guard.Revoke(r.Context(), currentUser(r), r.PostFormValue("action")); err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		http.Redirect(w, r, "/settings", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("everywhere") != "" {
			if err := guard.Revoke(r.Context(), currentUser(r)); err != nil {
				log.Print(err) // the grants of other browsers may live on: say so, or retry
			}
		}
		_ = guard.Forget(w, r)
		endLogin(w, r)
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
}
