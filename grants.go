package stepup

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Grant is a live Remember grant: a user completed a challenge for Action
// at Earned, and until Expires requests of that user for that action, from
// the browser or client that completed it, run without another challenge
// (Policy.Remember).
type Grant struct {
	Action  string    // the Authsignal action code
	Earned  time.Time // when the challenge was completed
	Expires time.Time // when the grant ends; it is never extended
	Method  string    // how it was earned, as Authsignal's validate named it ("PASSKEY", "SMS"…); "" when unknown
}

// Where a user's grants live in the Store. A grant is written under one of
// maxUserGrants slot ids of its user, "g." + owner + "." + two digits, where
// owner is a keyed digest of the user id (grantOwner): any instance can
// list a user's grants with Gets alone, and the Store never sees the user
// id. A slot is taken with Put, which never overwrites a live record, so
// concurrent grants of one user land in distinct slots. A grant that ends
// before its expiry (Revoke, Forget, a newer grant of its browser) is
// consumed, not deleted: its slot stays taken until it would have expired,
// so no reference to it ever finds another grant in its place.
const (
	maxUserGrants   = 32 // live grants per user, across browsers and actions
	grantOwnerLen   = 20 // base64url characters of the owner digest (15 bytes)
	grantIDPrefix   = "g."
	grantIDLen      = len(grantIDPrefix) + grantOwnerLen + 3 // "." and two digits
	grantOwnerInfo  = "stepup grant owner v1: HMAC-SHA256 key"
	grantOwnerLabel = "stepup grant owner\x00"
)

// deriveOwnerKeys derives, from each record secret, the key that names
// grant slots; deriveAEADs has checked the secrets.
func deriveOwnerKeys(secrets [][]byte) ([][]byte, error) {
	keys := make([][]byte, 0, len(secrets))
	for i, secret := range secrets {
		key, err := hkdf.Key(sha256.New, secret, nil, grantOwnerInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("stepup: record key %d: %w", i, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// grantOwner is the owner part of userID's slot ids under key.
func grantOwner(key []byte, userID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(grantOwnerLabel))
	m.Write([]byte(userID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:15])
}

// grantID is the id of slot i of owner.
func grantID(owner string, i int) string {
	return fmt.Sprintf("%s%s.%02d", grantIDPrefix, owner, i)
}

// isGrantSlot reports whether id is a slot id; grants written before slots
// existed had random ids, which Grants cannot list nor Revoke end, and are
// no longer honoured.
func isGrantSlot(id string) bool {
	return len(id) == grantIDLen && strings.HasPrefix(id, grantIDPrefix)
}

// grant gives a Remember grant for rec's action, with a fixed expiry, in
// the first free slot of its user. When every slot is taken, or the Store
// fails, there is no grant: the next request is challenged (fail closed).
func (g *Guard) grant(ctx context.Context, st *sessionState, rec *Record) {
	if rec.Remember <= 0 {
		return // the policy does not remember
	}
	now := g.now()
	gr := &Record{Kind: KindGrant, UserID: rec.UserID, Action: rec.Action, Created: now, Expires: now.Add(rec.Remember),
		Park: rec.ID, VerificationMethod: rec.VerificationMethod}
	owner := grantOwner(g.grantOwners[0], rec.UserID)
	for i := range maxUserGrants {
		gr.ID = grantID(owner, i)
		err := g.cfg.Store.Put(ctx, gr)
		if err == nil {
			st.addGrant(gr.ID, rec.Action, gr.Expires)
			return
		}
		if !errors.Is(err, ErrExists) {
			return
		}
	}
}

// liveGrant reports whether rec, read from the Store under the slot id a
// session's grantRef names, is that grant, live, for user and action.
// expires is the ref's expiry (unix seconds): a slot is reused only after
// its grant expired, and a later grant expires later.
func liveGrant(rec *Record, user, action string, expires int64, now time.Time) bool {
	return rec.Kind == KindGrant && !rec.Consumed && rec.UserID == user && rec.Action == action &&
		rec.Expires.Unix() == expires && now.Before(rec.Expires)
}

// Grants lists userID's live Remember grants, across browsers and
// instances, oldest first. A grant that Revoke or Forget ended, that
// expired, or that the Store altered is not listed. It makes one Store Get
// per slot (32, times the number of RecordKeys): meant for a settings page,
// not for every request. An error means the Store could not answer.
func (g *Guard) Grants(ctx context.Context, userID string) ([]Grant, error) {
	if userID == "" {
		return nil, errors.New("stepup: Grants: empty user id")
	}
	now := g.now()
	var out []Grant
	err := g.eachGrant(ctx, userID, func(_ string, rec *Record) {
		if !rec.Consumed && now.Before(rec.Expires) {
			out = append(out, Grant{Action: rec.Action, Earned: rec.Created, Expires: rec.Expires, Method: rec.VerificationMethod})
		}
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b Grant) int { return a.Earned.Compare(b.Earned) })
	return out, nil
}

// Revoke ends userID's Remember grants for the named actions, or all of
// them when none is named, in every browser and on every instance: the
// user's next request for such an action is challenged again. Call it from
// a settings page, at logout to end the grants of every browser (Forget
// ends those of the browser that logs out), and when Authsignal reports
// that the user's authenticator was removed or reset (the webhook calls
// Revoke(ctx, userID)). A grant earned by a challenge completed while
// Revoke runs may survive it. An error means some grants may not have been
// ended: the Store could not answer; call it again.
func (g *Guard) Revoke(ctx context.Context, userID string, actions ...string) error {
	if userID == "" {
		return errors.New("stepup: Revoke: empty user id")
	}
	var errs []error
	err := g.eachGrant(ctx, userID, func(id string, rec *Record) {
		if rec.Consumed || (len(actions) > 0 && !slices.Contains(actions, rec.Action)) {
			return
		}
		// The slot's grant may have expired and another of this user taken
		// the slot since the Get: then that one ends too, which is the
		// safe side.
		if _, err := g.cfg.Store.Consume(ctx, id); err != nil && !errors.Is(err, ErrConsumed) && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	})
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("stepup: revoking grants: %w", errors.Join(errs...))
	}
	return nil
}

// eachGrant calls f with every grant of userID the Store holds, consumed
// or not, in every slot under every owner key. A slot whose record is not
// one of userID's grants (missing, expired, altered) is skipped; a Store
// that fails ends the walk with its error.
func (g *Guard) eachGrant(ctx context.Context, userID string, f func(id string, rec *Record)) error {
	for _, key := range g.grantOwners {
		owner := grantOwner(key, userID)
		for i := range maxUserGrants {
			id := grantID(owner, i)
			rec, err := g.cfg.Store.Get(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("stepup: reading grants: %w", err)
			}
			if rec.Kind != KindGrant || rec.UserID != userID {
				continue
			}
			f(id, rec)
		}
	}
	return nil
}

// endRecord ends a record a session no longer refers to: a grant is
// consumed (its slot must not be reused before it expires), anything else
// deleted. Best effort: records expire anyway.
func (g *Guard) endRecord(ctx context.Context, id string) {
	if isGrantSlot(id) {
		_, _ = g.cfg.Store.Consume(ctx, id)
		return
	}
	_ = g.cfg.Store.Delete(ctx, id)
}
