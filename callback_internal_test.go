package stepup

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzCallbackParamsMatchParseQuery holds the callback's query scanner to
// what it replaced, url.ParseQuery then Values.Get: for any raw query, an
// error exactly when ParseQuery has one (the callback refuses those with
// 400, whatever their park and token), else the same park and token.
//
//	go test -run '^$' -fuzz FuzzCallbackParamsMatchParseQuery .
func FuzzCallbackParamsMatchParseQuery(f *testing.F) {
	for _, seed := range []string{
		"", "&", "&&", "=", "park", "park=", "token=", "park=a&token=b", "token=b&park=a",
		"park=a&park=b&token=c&token=d", "park=&park=b", "token=&token=b", "park=a=b", "park==a",
		"p%61rk=a&t%6Fken=b", "park=a%2Bb+c&token=%20", "park=%zz&token=b", "park=a&token=%zz", "%zz=a&park=b",
		"park=a&token=%", "park=a&token=%2", "park=a%&token=b", "park=a;token=b", "park=a&x=;&token=b", ";",
		"park=a&token=b#c", "park=a%00&token=b", "PARK=a&Token=b", "park%3Da&token=b", "park=a%26token%3Db",
		"park=\xff&token=\u2028", "park=a&&token=b&", "+park=a&park+=b&park=c",
		strings.Repeat("a&", maxQueryParams-1) + "park=a",        // at url.ParseQuery's limit
		strings.Repeat("a&", maxQueryParams) + "park=a",          // one pair over it
		strings.Repeat("&", maxQueryParams-1) + "park=a&token=b", // the limit counts empty pairs too
		strings.Repeat("&", maxQueryParams) + "park=a&token=b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, query string) {
		park, token, err := callbackParams(query)
		q, qerr := url.ParseQuery(query)
		require.Equal(t, qerr != nil, err != nil, "error for %q: %v, url.ParseQuery: %v", query, err, qerr)
		if err != nil {
			return // refused with 400 whatever its park and token
		}
		require.Equal(t, q.Get("park"), park, "park of %q", query)
		require.Equal(t, q.Get("token"), token, "token of %q", query)
	})
}
