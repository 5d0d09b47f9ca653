package stepup

import (
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

// queryValues collects every value queryValue finds for key in s, in order.
func queryValues(s, key string) []string {
	var out []string
	for {
		m, ok := queryValue(s, key)
		if !ok {
			return out
		}
		out = append(out, m.value)
		s = m.rest
	}
}

// netURLValues is what url.ParseQuery gives for every key that folds to
// key: the values the old reader judged.
func netURLValues(q url.Values, key string) []string {
	var out []string
	for k, vs := range q {
		if strings.EqualFold(k, key) {
			out = append(out, vs...)
		}
	}
	return out
}

// agreesWithNetURL fails t when checkQuery or queryValue read s other than
// url.ParseQuery does.
func agreesWithNetURL(t *testing.T, s, key string) {
	t.Helper()
	q, perr := url.ParseQuery(s)
	cerr := checkQuery(s)
	if (perr == nil) != (cerr == nil) {
		t.Fatalf("checkQuery(%q) = %v, url.ParseQuery: %v", s, cerr, perr)
	}
	if perr != nil {
		if cerr.Error() != perr.Error() {
			t.Fatalf("checkQuery(%q) says %q, net/url %q", s, cerr, perr)
		}
		return
	}
	got, want := queryValues(s, key), netURLValues(q, key)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("values of %q in %q: %q, url.ParseQuery: %q", key, s, got, want)
	}
}

func TestQueryReadingAgreesWithNetURL(t *testing.T) {
	for _, tc := range []struct{ query, key string }{
		{"", "amount"},
		{"amount=5", "amount"},
		{"amount=5&amount=6", "amount"},
		{"AMOUNT=5&amount=5", "amount"},
		{"a%6dount=5", "amount"},  // an escaped key
		{"am%6Funt=5", "amount"},  // not the key once unescaped
		{"amount=5%25", "amount"}, // an escaped value
		{"amount=1+000", "amount"},
		{"amount", "amount"},      // no '=': an empty value
		{"amount=", "amount"},     // an empty value
		{"=5&amount=6", "amount"}, // an empty key
		{"&&amount=5&&", "amount"},
		{"amount=5=6", "amount"}, // the value runs to '&'
		{"%C5%BFum=1", "sum"},    // ſ folds to s
		{"amount=5;x=1", "amount"},
		{"amount=5&;", "amount"},
		{"amount=%", "amount"},
		{"amount=%4", "amount"},
		{"amount=%4&", "amount"},
		{"amount=%zz", "amount"},
		{"am%zzount=5", "amount"},
		{"%=5&amount=6", "amount"},
		{"amount=%4=", "amount"},
		{"amount=%%41", "amount"},
		{"x=%41%", "amount"},
		{strings.Repeat("a=1&", 9999) + "a=1", "a"}, // 10,000 pairs: the limit
		{strings.Repeat("a=1&", 10000) + "a=1", "a"},
		{strings.Repeat("&", 9999), "a"},
		{strings.Repeat("&", 10000), "a"},
	} {
		agreesWithNetURL(t, tc.query, tc.key)
	}
}

// Every escape, well-formed or not, as net/url judges it: each hex digit's
// boundaries ('0' '9' 'a' 'f' 'A' 'F') and everything around them.
func TestQueryEscapesAgreeWithNetURL(t *testing.T) {
	for c := range 256 {
		for _, e := range []string{"%" + string(rune(c)) + "0", "%0" + string(rune(c))} {
			for _, e := range []string{e, e[:2] + "&" + e[2:]} { // and cut short before '&'
				agreesWithNetURL(t, "k="+e, "k")
				agreesWithNetURL(t, e+"=1", "k")
			}
		}
	}
}

// A process with its own urlmaxqueryparams (GODEBUG) gets net/url's
// answer, not the default limit.
func TestQueryLimitFollowsGODEBUG(t *testing.T) {
	q := "a=1&a=2&a=3&a=4&a=5&a=6"
	if err := checkQuery(q); err != nil {
		t.Fatalf("six pairs under the default limit: %v", err)
	}
	t.Setenv("GODEBUG", "urlmaxqueryparams=5")
	if _, err := url.ParseQuery(q); err == nil {
		t.Skip("this Go does not apply GODEBUG changes at run time")
	}
	if !queryLimitChanged() {
		t.Fatal("GODEBUG urlmaxqueryparams not noticed")
	}
	if err := checkQuery(q); err == nil {
		t.Fatal("checkQuery accepted more pairs than net/url's limit")
	}
	agreesWithNetURL(t, q, "a")
	agreesWithNetURL(t, "a=1&a=2", "a")
}

// The fast path allocates nothing for a well-formed query whose matching
// values carry no escapes: the point of reading it raw.
func TestQueryReadingDoesNotAllocate(t *testing.T) {
	const q = "amount=5000&to=bob&note=rent+for+november&AMOUNT=5000"
	if strings.Contains(os.Getenv("GODEBUG"), "urlmaxqueryparams") {
		t.Skip("GODEBUG urlmaxqueryparams is set: checkQuery asks net/url")
	}
	n := testing.AllocsPerRun(100, func() {
		if checkQuery(q) != nil {
			t.Fatal("refused")
		}
		if got := queryValues2(q, "amount"); got != 2 {
			t.Fatalf("found %d values", got)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// queryValues2 counts key's values without collecting them.
func queryValues2(s, key string) int {
	n := 0
	for {
		m, ok := queryValue(s, key)
		if !ok {
			return n
		}
		if m.value != "5000" {
			return -1
		}
		n++
		s = m.rest
	}
}

func FuzzCheckQuery(f *testing.F) {
	for _, s := range []string{"", "amount=5&AMOUNT=6", "a%6dount=1", "amount=%zz", "a=1;b=2", "=&&=", "%C5%BFum=1+2", "amount=%4"} {
		f.Add(s, "amount")
	}
	f.Fuzz(func(t *testing.T, s, key string) {
		agreesWithNetURL(t, s, key)
		q, _ := url.ParseQuery(s)
		n := 0
		for k := range q { // keys the query does have, and their folds
			if n++; n > 4 {
				break
			}
			agreesWithNetURL(t, s, k)
			agreesWithNetURL(t, s, strings.ToUpper(k))
		}
	})
}
