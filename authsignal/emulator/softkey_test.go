package emulator_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

// softKey is a software passkey authenticator (ES256, "none" attestation)
// that answers the emulator's ceremonies as a browser with a platform
// authenticator would: what Chromium's virtual authenticator does in
// examples/internal/emulatormethods, here without a browser.
type softKey struct {
	t      testing.TB
	key    *ecdsa.PrivateKey
	id     []byte
	origin string
	count  uint32
	flags  byte // UP 0x01, UV 0x04
}

func newSoftKey(t testing.TB, origin string) *softKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	id := make([]byte, 32)
	rand.Read(id)
	return &softKey{t: t, key: k, id: id, origin: origin, flags: 0x05}
}

var b64u = base64.RawURLEncoding

func (k *softKey) authData(rpID string, attested bool) []byte {
	h := sha256.Sum256([]byte(rpID))
	d := append([]byte{}, h[:]...)
	flags := k.flags
	if attested {
		flags |= 0x40
	}
	k.count++
	d = append(d, flags)
	d = binary.BigEndian.AppendUint32(d, k.count)
	if attested {
		x, y := k.key.PublicKey.X.FillBytes(make([]byte, 32)), k.key.PublicKey.Y.FillBytes(make([]byte, 32))
		cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
		require.NoError(k.t, err)
		d = append(d, make([]byte, 16)...) // AAGUID
		d = binary.BigEndian.AppendUint16(d, uint16(len(k.id)))
		d = append(d, k.id...)
		d = append(d, cose...)
	}
	return d
}

func (k *softKey) clientData(typ string, opts map[string]any) []byte {
	c, err := json.Marshal(map[string]any{"type": typ, "challenge": opts["challenge"], "origin": k.origin, "crossOrigin": false})
	require.NoError(k.t, err)
	return c
}

// create answers navigator.credentials.create with the begin options.
func (k *softKey) create(opts map[string]any) string {
	pk := opts["publicKey"].(map[string]any)
	rpID := pk["rp"].(map[string]any)["id"].(string)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(rpID, true)})
	require.NoError(k.t, err)
	return k.json(map[string]any{"clientDataJSON": b64u.EncodeToString(k.clientData("webauthn.create", pk)),
		"attestationObject": b64u.EncodeToString(att), "transports": []string{"internal"}})
}

// get answers navigator.credentials.get with the begin options.
func (k *softKey) get(opts map[string]any, userHandle string) string {
	pk := opts["publicKey"].(map[string]any)
	ad := k.authData(pk["rpId"].(string), false)
	cd := k.clientData("webauthn.get", pk)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	require.NoError(k.t, err)
	return k.json(map[string]any{"clientDataJSON": b64u.EncodeToString(cd), "authenticatorData": b64u.EncodeToString(ad),
		"signature": b64u.EncodeToString(sig), "userHandle": userHandle})
}

func (k *softKey) json(response map[string]any) string {
	b, err := json.Marshal(map[string]any{"id": b64u.EncodeToString(k.id), "rawId": b64u.EncodeToString(k.id),
		"type": "public-key", "response": response, "clientExtensionResults": map[string]any{}, "authenticatorAttachment": "platform"})
	require.NoError(k.t, err)
	return string(b)
}

// ceremony runs begin and finish on the page of got, answering with answer.
func ceremony(t *testing.T, b *browser, srv *emulator.Server, got trackResult, csrf string, answer func(map[string]any) string) (int, map[string]any) {
	t.Helper()
	status, opts := passkeyCall(t, b, srv, "/challenge/passkey/begin", got.Token, csrf, nil)
	require.Equal(t, http.StatusOK, status, "%v", opts)
	return passkeyCall(t, b, srv, "/challenge/passkey/finish", got.Token, csrf, url.Values{"credential": {answer(opts)}})
}

// signInPage opens a challenge that offers a passkey and returns its csrf.
func signInPage(t *testing.T, srv *emulator.Server, got trackResult) (*browser, string) {
	t.Helper()
	b := newBrowser(t)
	resp, page := b.get(got.URL)
	require.Contains(t, page, `id="passkey" type="button">Use a passkey`)
	assert.Contains(t, page, "navigator.credentials.get")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "connect-src 'self'")
	return b, csrfOf(t, page)
}

func TestSoftPasskeyRegistersThenSignsIn(t *testing.T) {
	srv := startLocalhost(t, emulator.Config{Rules: mustRules(t, methodRules)})
	key := newSoftKey(t, srv.URL)

	got := track(t, srv, "pat", "passkeyOnly", map[string]any{"redirectUrl": "https://app.example/cb"})
	b, _, page := passkeyPage(t, srv, got)
	var userHandle string
	status, out := ceremony(t, b, srv, got, csrfOf(t, page), func(opts map[string]any) string {
		userHandle = opts["publicKey"].(map[string]any)["user"].(map[string]any)["id"].(string)
		return key.create(opts)
	})
	require.Equal(t, http.StatusOK, status, "%v", out)
	loc := mustParse(t, out["location"].(string))
	assert.Equal(t, "app.example", loc.Host)
	v := validate(t, srv, map[string]any{"token": loc.Query().Get("token")})
	assert.Equal(t, "CHALLENGE_SUCCEEDED", v["state"])
	assert.Equal(t, "PASSKEY", v["verificationMethod"])
	_, user := call(t, srv, http.MethodGet, "/v1/users/pat", nil)
	assert.Equal(t, []any{"PASSKEY"}, user["enrolledVerificationMethods"])
	assert.Equal(t, "pat@example.com", user["email"])

	next := track(t, srv, "pat", "passkeyOnly", map[string]any{"redirectUrl": "https://app.example/cb"})
	assert.Equal(t, []string{"PASSKEY"}, next.AllowedVerificationMethods)
	b, csrf := signInPage(t, srv, next)
	status, out = ceremony(t, b, srv, next, csrf, func(opts map[string]any) string {
		allowed := opts["publicKey"].(map[string]any)["allowCredentials"].([]any)
		require.Len(t, allowed, 1)
		assert.Equal(t, b64u.EncodeToString(key.id), allowed[0].(map[string]any)["id"], "the user's passkey is asked for")
		return key.get(opts, userHandle)
	})
	require.Equal(t, http.StatusOK, status, "%v", out)
	v = validate(t, srv, map[string]any{"token": mustParse(t, out["location"].(string)).Query().Get("token")})
	assert.Equal(t, "CHALLENGE_SUCCEEDED", v["state"])
	assert.Equal(t, "PASSKEY", v["verificationMethod"])

	refused := func(t *testing.T, answer func(map[string]any) string) {
		t.Helper()
		got := track(t, srv, "pat", "passkeyOnly", nil)
		b, csrf := signInPage(t, srv, got)
		status, out := ceremony(t, b, srv, got, csrf, answer)
		assert.Equal(t, http.StatusUnprocessableEntity, status, "%v", out)
		assert.Equal(t, "The passkey was not accepted. 2 attempts left.", out["error"])
		assert.Equal(t, "CHALLENGE_REQUIRED", validate(t, srv, map[string]any{"token": got.Token})["state"])
	}
	t.Run("another key with the same id", func(t *testing.T) {
		forged := newSoftKey(t, srv.URL)
		forged.id, forged.count = key.id, key.count
		refused(t, func(opts map[string]any) string { return forged.get(opts, userHandle) })
	})
	t.Run("without user verification", func(t *testing.T) {
		key.flags = 0x01
		defer func() { key.flags = 0x05 }()
		refused(t, func(opts map[string]any) string { return key.get(opts, userHandle) })
	})
	t.Run("from another origin", func(t *testing.T) {
		key.origin = "http://localhost:1"
		defer func() { key.origin = srv.URL }()
		refused(t, func(opts map[string]any) string { return key.get(opts, userHandle) })
	})
	t.Run("a signature counter that went back: a cloned key", func(t *testing.T) {
		// Accepted so far: counts 1 (registration) and 2; the refusals since
		// do not count.
		key.count = 1 // the next answer says 2: not beyond the last one accepted
		refused(t, func(opts map[string]any) string { return key.get(opts, userHandle) })
		key.count = 10
	})
	t.Run("an answer to another ceremony", func(t *testing.T) {
		var stale map[string]any
		got := track(t, srv, "pat", "passkeyOnly", nil)
		b, csrf := signInPage(t, srv, got)
		_, stale = passkeyCall(t, b, srv, "/challenge/passkey/begin", got.Token, csrf, nil)
		refusedOut := func(opts map[string]any) string { return key.get(stale, userHandle) }
		status, out := ceremony(t, b, srv, got, csrf, refusedOut)
		assert.Equal(t, http.StatusUnprocessableEntity, status, "%v", out)
	})
	t.Run("still good after the refusals", func(t *testing.T) {
		got := track(t, srv, "pat", "passkeyOnly", nil)
		b, csrf := signInPage(t, srv, got)
		status, out := ceremony(t, b, srv, got, csrf, func(opts map[string]any) string { return key.get(opts, userHandle) })
		assert.Equal(t, http.StatusOK, status, "%v", out)
	})
	t.Run("another user cannot register the same passkey", func(t *testing.T) {
		got := track(t, srv, "eve", "passkeyOnly", nil)
		b, page := enrolToPick(t, srv, got, "eve@example.com")
		resp, _ := b.post(srv.URL+"/challenge/enrol", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"PASSKEY"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		status, out := ceremony(t, b, srv, got, csrfOf(t, page), key.create)
		assert.Equal(t, http.StatusUnprocessableEntity, status, "%v", out)
		_, user := call(t, srv, http.MethodGet, "/v1/users/eve", nil)
		assert.Equal(t, false, user["isEnrolled"])
	})
}
