package stepup

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

// agreesWithRCookie fails t when cookieValue finds other than r.Cookie in
// a request with the given Cookie header lines.
func agreesWithRCookie(t *testing.T, name string, lines ...string) {
	t.Helper()
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	for _, l := range lines {
		r.Header.Add("Cookie", l)
	}
	v, ok := cookieValue(r, name)
	c, err := r.Cookie(name)
	if ok != (err == nil) || ok && v != c.Value {
		t.Fatalf("cookieValue(%q) of %q = %q, %v; r.Cookie: %v, %v", name, lines, v, ok, c, err)
	}
	if hasCookie(r, name) != ok {
		t.Fatalf("hasCookie(%q) of %q disagrees with cookieValue", name, lines)
	}
}

func TestCookieValueAgreesWithNetHTTP(t *testing.T) {
	for _, lines := range [][]string{
		nil,
		{""},
		{"stepup=abc"},
		{"a=1; stepup=abc; b=2"},
		{"stepup"},                       // no '=': an empty value
		{"stepup="},                      // an empty value
		{" stepup = abc "},               // spaces around name and value
		{"stepup=\"abc\""},               // quoted
		{"stepup=\""},                    // a lone quote: invalid
		{"stepup=\"\""},                  // quoted empty
		{"stepup=a\"b"},                  // an inner quote: invalid
		{"stepup=a\\b; stepup=ok"},       // invalid, then a valid one
		{"stepup=a b"},                   // a space inside is valid
		{"stepup=a\x7fb; stepup=second"}, // DEL is invalid
		{"stepup=a\x1fb"},                // a control byte
		{"stepup=é"},                     // non-ASCII
		{"stepup=first; stepup=second"},
		{"x=1", "stepup=second-line"},
		{"stepup=one", "stepup=two"},
		{"Stepup=upper; stepup=lower"},
		{"stepupx=1; xstepup=2"},
		{";;; stepup=abc ;;"},
		{"stepup=a=b"},
		{"\tstepup=tab\t"},
		{strings.Repeat("a=1;", 2999) + "stepup=at-cap"},
		{strings.Repeat("a=1;", 3000) + "stepup=over-cap"},
		{strings.Repeat("a=1;", 1500), strings.Repeat("b=1;", 1499) + "stepup=split"},
	} {
		agreesWithRCookie(t, "stepup", lines...)
	}
}

// A process with its own httpcookiemaxnum gets net/http's answer.
func TestCookieValueFollowsGODEBUG(t *testing.T) {
	line := "a=1; b=2; c=3; stepup=v"
	agreesWithRCookie(t, "stepup", line)
	t.Setenv("GODEBUG", "httpcookiemaxnum=3")
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", line)
	if _, err := r.Cookie("stepup"); err == nil {
		t.Skip("this Go does not apply GODEBUG changes at run time")
	}
	if _, ok := cookieValue(r, "stepup"); ok {
		t.Fatal("cookieValue found a cookie past net/http's cap")
	}
}

// Finding the guard's cookie allocates nothing: the point of not asking
// r.Cookie.
func TestCookieValueDoesNotAllocate(t *testing.T) {
	if strings.Contains(os.Getenv("GODEBUG"), "httpcookiemaxnum") {
		t.Skip("GODEBUG httpcookiemaxnum is set: cookieValue asks r.Cookie")
	}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "session=MTc2NDI4; stepup=\"AbC-dEf_123\"; theme=dark")
	n := testing.AllocsPerRun(100, func() {
		if v, ok := cookieValue(r, "stepup"); !ok || v != "AbC-dEf_123" {
			t.Fatalf("got %q, %v", v, ok)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func FuzzCookieValue(f *testing.F) {
	f.Add("a=1; stepup=abc", "", "stepup")
	f.Add("stepup=\"q\"; stepup=x", "stepup=y", "stepup")
	f.Add(" stepup = a b ", "", "stepup")
	f.Add("stepup=a\\b", "stepup=ok", "stepup")
	f.Fuzz(func(t *testing.T, line1, line2, name string) {
		if (&http.Cookie{Name: name}).Valid() != nil {
			return // New refuses such a SessionName
		}
		agreesWithRCookie(t, name, line1)
		agreesWithRCookie(t, name, line1, line2)
	})
}
