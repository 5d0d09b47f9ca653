package stepup

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/gorilla/securecookie"
)

// cookieCodec seals the guard's encoded session data (sessioncodec.go)
// into the value of its own cookie, and opens such a value. open returns
// false for anything it did not seal itself, or sealed for a deadline
// already passed: the guard then has no session, as with no cookie at all.
type cookieCodec interface {
	seal(raw []byte, expires time.Time) (string, error)
	open(value string, now time.Time) ([]byte, bool)
}

// The guard's own cookie format with Config.CookieKeys: the unpadded
// base64url encoding of
//
//	version (1 byte) | nonce (12 random bytes) | AES-256-GCM ciphertext and tag
//
// with the version and the cookie's name as additional data (a value
// copied under another name does not open), and as plaintext the cookie's deadline (unix
// seconds, 8 bytes big-endian: what Max-Age says) followed by the encoded
// session data. Each secret of CookieKeys gives its AES key through
// HKDF-SHA256 with cookieKeyInfo; the first seals, every one opens.
const (
	cookieVersion  = 1
	cookieKeyInfo  = "stepup guard cookie v1: AES-256-GCM key"
	maxCookieValue = 4096 // bytes of cookie value, as securecookie's default
	cookieNonce    = 12
	cookieHeader   = 1 + cookieNonce // version and nonce
	cookieDeadline = 8
	cookieTag      = 16                                        // GCM's
	minCookieBytes = cookieHeader + cookieTag + cookieDeadline // an empty session
)

// keyedCookie is the cookieCodec of Config.CookieKeys. Its AEADs are
// built once in New and are safe for concurrent use.
type keyedCookie struct {
	aeads []cipher.AEAD // aeads[0] seals
	ad    []byte        // version and cookie name: the additional data
	enc   *base64.Encoding
}

// newKeyedCookie derives one AES-256-GCM AEAD per secret for the cookie
// named name. It fails when a secret is shorter than minKeySecret bytes.
func newKeyedCookie(secrets [][]byte, name string) (*keyedCookie, error) {
	kc := &keyedCookie{
		ad:  append([]byte{cookieVersion}, name...),
		enc: base64.RawURLEncoding.Strict(),
	}
	aeads, err := deriveAEADs(secrets, "Config.CookieKeys", cookieKeyInfo)
	if err != nil {
		return nil, err
	}
	kc.aeads = aeads
	return kc, nil
}

// seal encrypts raw under the first key, with expires as the value's own
// deadline. One buffer holds the sealed bytes and their encoding; the
// string is the second allocation. It never fails: crypto/rand.Read
// always fills its buffer (or crashes the program), and the largest
// session the guard keeps encodes well below maxCookieValue
// (TestCookieKeysLargestSessionFits).
func (kc *keyedCookie) seal(raw []byte, expires time.Time) (string, error) {
	aead := kc.aeads[0]
	n := minCookieBytes + len(raw)
	buf := make([]byte, n+kc.enc.EncodedLen(n))
	buf[0] = cookieVersion
	_, _ = rand.Read(buf[1:cookieHeader])
	plain := binary.BigEndian.AppendUint64(buf[cookieHeader:cookieHeader], uint64(expires.Unix()))
	plain = append(plain, raw...)
	aead.Seal(plain[:0], buf[1:cookieHeader], plain, kc.ad)
	out := buf[n:]
	kc.enc.Encode(out, buf[:n])
	return string(out), nil
}

// open returns the session data sealed in value by any of the keys, or
// false: a value too long, not canonical base64url, of another version or
// cookie name, altered in any byte, sealed by none of the keys, or whose
// deadline is not after now. It allocates one buffer: the decoded value,
// then room for the plaintext (an AEAD that fails may overwrite its
// output, so the ciphertext stays intact for the next key).
func (kc *keyedCookie) open(value string, now time.Time) ([]byte, bool) {
	if len(value) > maxCookieValue {
		return nil, false
	}
	dl := kc.enc.DecodedLen(len(value))
	buf := make([]byte, 2*dl)
	n, err := kc.enc.Decode(buf[:dl], []byte(value))
	// The decoder skips CR and LF: only the exact encoding of the bytes opens.
	if err != nil || kc.enc.EncodedLen(n) != len(value) || n < minCookieBytes || buf[0] != cookieVersion {
		return nil, false
	}
	plain, ok := openAny(kc.aeads, buf[dl:dl], buf[1:cookieHeader], buf[cookieHeader:n], kc.ad)
	if !ok || now.Unix() >= int64(binary.BigEndian.Uint64(plain)) {
		return nil, false
	}
	return plain[cookieDeadline:], true
}

// minKeySecret is how many bytes of secret each key of CookieKeys and
// RecordKeys must have.
const minKeySecret = 32

// deriveAEADs derives one AES-256-GCM AEAD from each secret, through
// HKDF-SHA256 with info as the label that keeps the keys of one use apart
// from every other use of the same secret. field names the Config field in
// errors; a secret shorter than minKeySecret bytes is one.
func deriveAEADs(secrets [][]byte, field, info string) ([]cipher.AEAD, error) {
	aeads := make([]cipher.AEAD, 0, len(secrets))
	for i, secret := range secrets {
		if len(secret) < minKeySecret {
			return nil, fmt.Errorf("stepup: %s[%d] is %d bytes; each key must be a random secret of at least %d bytes (openssl rand -base64 32)",
				field, i, len(secret), minKeySecret)
		}
		key, err := hkdf.Key(sha256.New, secret, nil, info, 32)
		if err != nil {
			return nil, fmt.Errorf("stepup: %s[%d]: %w", field, i, err)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("stepup: %s[%d]: %w", field, i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("stepup: %s[%d]: %w", field, i, err)
		}
		aeads = append(aeads, aead)
	}
	return aeads, nil
}

// openAny opens sealed with the first of aeads that authenticates it,
// appending the plaintext to dst (which must not overlap sealed: an AEAD
// that fails may overwrite its output, and the ciphertext must stay intact
// for the next key).
func openAny(aeads []cipher.AEAD, dst, nonce, sealed, ad []byte) ([]byte, bool) {
	for _, aead := range aeads {
		if plain, err := aead.Open(dst, nonce, sealed, ad); err == nil {
			return plain, true
		}
	}
	return nil, false
}

// secureCookies is the cookieCodec of a gorilla CookieStore without
// CookieKeys: copies of the store's securecookie codecs (ownCodecs), whose
// own MaxAge bounds a value's age.
type secureCookies struct {
	name   string
	codecs []securecookie.Codec
}

func (sc secureCookies) seal(raw []byte, _ time.Time) (string, error) {
	return securecookie.EncodeMulti(sc.name, raw, sc.codecs...)
}

func (sc secureCookies) open(value string, _ time.Time) ([]byte, bool) {
	var raw []byte
	if securecookie.DecodeMulti(sc.name, value, &raw, sc.codecs...) != nil {
		return nil, false
	}
	return raw, true
}
