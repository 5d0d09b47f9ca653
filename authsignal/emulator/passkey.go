package emulator

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// passkeyCeremony is a WebAuthn registration or authentication begun on the
// hosted page and not yet finished.
type passkeyCeremony struct {
	register bool
	origin   string
	session  webauthn.SessionData
}

// webauthnUser is a user as go-webauthn sees it.
type webauthnUser struct{ u *userRecord }

func (w webauthnUser) WebAuthnID() []byte { return w.u.webauthnID }
func (w webauthnUser) WebAuthnName() string {
	if w.u.email != "" {
		return w.u.email
	}
	return w.u.id
}
func (w webauthnUser) WebAuthnDisplayName() string                { return w.WebAuthnName() }
func (w webauthnUser) WebAuthnCredentials() []webauthn.Credential { return w.u.passkeys }

// relyingParty is the WebAuthn relying party of the page served at base
// (scheme://host[:port]): its RP ID is the host, its one origin base.
// Browsers accept http only on localhost, and no IP address as an RP ID:
// open the page as http://localhost:port, not 127.0.0.1.
func relyingParty(base string) (*webauthn.WebAuthn, error) {
	u, err := url.Parse(base)
	if err != nil || u.Hostname() == "" {
		return nil, errors.New("emulator: no host for the passkey relying party")
	}
	if net.ParseIP(u.Hostname()) != nil {
		return nil, fmt.Errorf("passkeys need the page at a host name: browsers refuse an IP address (%s) as the relying party; "+
			"open the emulator as http://localhost:<port> (PublicURL, or -public-url)", u.Hostname())
	}
	return webauthn.New(&webauthn.Config{
		RPID:          u.Hostname(),
		RPDisplayName: "Authsignal emulator",
		RPOrigins:     []string{u.Scheme + "://" + u.Host},
	})
}

// beginPasskeyLocked starts a ceremony for rec's user at base and returns
// the options for navigator.credentials.create (register) or get.
func (e *Emulator) beginPasskeyLocked(rec *actionRecord, base string, register bool) (any, error) {
	rp, err := relyingParty(base)
	if err != nil {
		return nil, err
	}
	u := e.userLocked(rec.key.user)
	if len(u.webauthnID) == 0 {
		u.webauthnID = make([]byte, 32)
		rand.Read(u.webauthnID)
	}
	c := &passkeyCeremony{register: register, origin: base}
	var opts any
	var session *webauthn.SessionData
	if register {
		var excl []protocol.CredentialDescriptor
		for _, p := range u.passkeys {
			excl = append(excl, p.Descriptor())
		}
		opts, session, err = rp.BeginRegistration(webauthnUser{u},
			webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
				ResidentKey:      protocol.ResidentKeyRequirementPreferred,
				UserVerification: protocol.VerificationRequired,
			}),
			webauthn.WithExclusions(excl))
	} else {
		if len(u.passkeys) == 0 {
			return nil, errors.New("no passkey is registered for this user")
		}
		opts, session, err = rp.BeginLogin(webauthnUser{u}, webauthn.WithUserVerification(protocol.VerificationRequired))
	}
	if err != nil {
		return nil, err
	}
	c.session = *session
	rec.passkey = c
	return opts, nil
}

// finishPasskeyLocked checks the browser's answer to the ceremony under way
// for rec; on success a registration adds the passkey to the user.
func (e *Emulator) finishPasskeyLocked(rec *actionRecord, base string, register bool, response []byte) error {
	c := rec.passkey
	rec.passkey = nil // one answer per ceremony, right or wrong
	if c == nil || c.register != register || c.origin != base {
		return errors.New("no passkey ceremony is under way: start again")
	}
	rp, err := relyingParty(base)
	if err != nil {
		return err
	}
	u := e.userLocked(rec.key.user)
	if register {
		parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
		if err != nil {
			return err
		}
		cred, err := rp.CreateCredential(webauthnUser{u}, c.session, parsed)
		if err != nil {
			return err
		}
		for _, other := range e.users { // a credential id names one credential of one user
			for _, p := range other.passkeys {
				if bytes.Equal(p.ID, cred.ID) {
					return errors.New("this passkey is registered already")
				}
			}
		}
		u.passkeys = append(u.passkeys, *cred)
		return nil
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return err
	}
	cred, err := rp.ValidateLogin(webauthnUser{u}, c.session, parsed)
	if err != nil {
		return err
	}
	if cred.Authenticator.CloneWarning {
		return errors.New("the passkey's signature counter went backwards: a cloned authenticator?")
	}
	for i := range u.passkeys {
		if bytes.Equal(u.passkeys[i].ID, cred.ID) {
			u.passkeys[i] = *cred
		}
	}
	return nil
}
