package stepup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/stepupkit/stepup/authsignal"
)

// track asks the provider about a protected request, under the park id
// the challenge would get. An error is a provider failure: no answer in
// time, or an answer the guard cannot trust (see checkChallenge).
func (g *Guard) track(r *http.Request, rl *rule, user, parkID string, custom map[string]any) (*authsignal.TrackResponse, error) {
	req := authsignal.TrackRequest{
		RedirectURL:    g.callbackFor(parkID),
		IPAddress:      g.clientIP(r),
		UserAgent:      r.UserAgent(),
		Custom:         custom,
		IdempotencyKey: parkID,
	}
	if g.cfg.DeviceID != nil {
		req.DeviceID = g.cfg.DeviceID(r)
	}
	sctx, end := g.startStep(r.Context(), &Step{Name: StepTrack, Action: rl.Action})
	ctx, cancel := context.WithTimeout(sctx, g.cfg.ProviderTimeout)
	resp, err := g.cfg.Provider.Track(ctx, user, rl.Action, req)
	cancel()
	if err == nil && resp == nil {
		err = errors.New("empty track response")
	}
	if err == nil && rl.opensChallenge(resp) {
		err = g.checkChallenge(resp, parkID)
	}
	if err == nil && !resp.State.Known() {
		err = fmt.Errorf("unknown state %q", resp.State)
	}
	end(err)
	return resp, err
}

// clientIP is the connection's address, or the right-most untrusted
// address of X-Forwarded-For when the connection comes from a trusted
// proxy.
func (g *Guard) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	addr = addr.Unmap()
	if !g.trusted(addr) {
		return addrString(addr, host)
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = a.Unmap()
		if !g.trusted(a) {
			return a.String()
		}
		addr = a
	}
	return addr.String()
}

// addrString is addr's text; host when that is what it already says, so
// that the common case does not allocate.
func addrString(addr netip.Addr, host string) string {
	var buf [64]byte
	if string(addr.AppendTo(buf[:0])) == host {
		return host
	}
	return addr.String()
}

func (g *Guard) trusted(a netip.Addr) bool {
	for _, p := range g.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// callbackFor is the callback URL with the park parameter, as
// url.Values.Encode would write it (keys sorted): built from the parts
// precomputed in New (callbackParts). A park id needs no escaping.
func (g *Guard) callbackFor(parkID string) string {
	return g.callbackPrefix + parkID + g.callbackSuffix
}

// callbackParts splits the callback URL around the value of its park
// parameter, which replaces any park the configured URL has.
func callbackParts(cb *url.URL) (prefix, suffix string) {
	q := cb.Query()
	q.Del("park")
	before, after := url.Values{}, url.Values{}
	for k, vs := range q {
		if k < "park" {
			before[k] = vs
		} else {
			after[k] = vs
		}
	}
	u := *cb
	u.RawQuery, u.ForceQuery = "", false
	prefix = u.String() + "?"
	if e := before.Encode(); e != "" {
		prefix += e + "&"
	}
	prefix += "park="
	if e := after.Encode(); e != "" {
		suffix = "&" + e
	}
	return prefix, suffix
}

// checkChallenge refuses a challenge URL the browser must not be sent to,
// and a response that does not carry the park's idempotency key.
func (g *Guard) checkChallenge(resp *authsignal.TrackResponse, parkID string) error {
	if resp.IdempotencyKey != parkID {
		return errors.New("track answered with another idempotency key")
	}
	u, err := url.Parse(resp.URL)
	if err != nil || resp.URL == "" || u.User != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return errors.New("challenge URL missing or malformed")
	}
	for _, c := range resp.URL {
		if c <= ' ' || c == 0x7f {
			return errors.New("challenge URL has control characters or spaces")
		}
	}
	for _, o := range g.origins {
		if o.allows(u) {
			return nil
		}
	}
	return &originError{scheme: u.Scheme, host: u.Host}
}

// origin is an allowed challenge origin.
type origin struct {
	scheme, host string // host may start with "*."
}

func parseOrigin(s string) (origin, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return origin{}, fmt.Errorf("stepup: ChallengeOrigins: %q is not scheme://host[:port]", s)
	}
	host := strings.ToLower(u.Host)
	if strings.Contains(host, "*") {
		rest, ok := strings.CutPrefix(host, "*.")
		h := rest
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			h = h[:i]
		}
		// "*." must be followed by a registrable name: at least two labels,
		// no other wildcard.
		if !ok || strings.Contains(rest, "*") || strings.Count(h, ".") < 1 || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
			return origin{}, fmt.Errorf("stepup: ChallengeOrigins: %q: a wildcard must be a leading \"*.\" before a domain such as authsignal.com", s)
		}
		host = "*." + rest
	}
	return origin{u.Scheme, host}, nil
}

func (o origin) allows(u *url.URL) bool {
	if u.Scheme != o.scheme {
		return false
	}
	host := strings.ToLower(u.Host)
	if suffix, ok := strings.CutPrefix(o.host, "*"); ok {
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return host == o.host
}
