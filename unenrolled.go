package stepup

import (
	"context"

	"github.com/stepupkit/stepup/authsignal"
)

// Authsignal answers ALLOW with isEnrolled false for a user who has no
// authenticator, whatever its rules would have asked of an enrolled user:
// nobody can be challenged without a second factor. Running the handler
// then would be a silent pass for every unenrolled account (and for
// whoever holds one of their sessions). Policy.Unenrolled decides instead:
//
//   - UnenrolledDeny, the default: a 403 (ErrUnenrolled, code
//     "unenrolled") that says to set up two-step verification first;
//     nothing is parked or run. Authsignal's answer does not say whether
//     an enrolled user would have been challenged, so an unenrolled user
//     is refused even where the rules would let anyone through.
//   - UnenrolledEnroll: the answer opens a challenge at Authsignal's URL,
//     where the pre-built UI enrols the user's first authenticator. The
//     request is parked, and the challenge counted against the caps,
//     exactly as for CHALLENGE_REQUIRED; once the user has enrolled,
//     Authsignal reports the action CHALLENGE_SUCCEEDED and the callback
//     (or the API retry with Step-Up-Token) runs it once, with every
//     binding of a challenge. A Remember grant follows, as after any
//     challenge.
//   - UnenrolledAllow: the handler runs, with Verification.How
//     HowUnenrolled; reported as EventAllow with reason "unenrolled" and
//     logged at Warn even without Config.Logger. It earns no Remember
//     grant, so every request asks Authsignal again and stops passing as
//     soon as the user enrols.
//
// Only a fresh ALLOW is concerned: a CHALLENGE_REQUIRED for an unenrolled
// user (an Authsignal rule may ask for enrolment itself) is a challenge,
// BLOCK and REVIEW_REQUIRED are what they say, and a FailOpen policy lets
// the request through when the provider fails, enrolled or not, since there
// is no answer to tell.

// reasonUnenrolled is the Event.Reason of a request allowed without a
// second factor.
const reasonUnenrolled = "unenrolled"

// opensChallenge reports whether the track answer resp opens a challenge
// for rl: CHALLENGE_REQUIRED, or ALLOW for an unenrolled user under
// UnenrolledEnroll. Its URL is then checked like any challenge URL, and
// the slot reserved for it is kept.
func (rl *rule) opensChallenge(resp *authsignal.TrackResponse) bool {
	switch resp.State {
	case authsignal.StateChallengeRequired:
		return true
	case authsignal.StateAllow:
		return !resp.IsEnrolled && rl.Unenrolled == UnenrolledEnroll
	}
	return false
}

// allowUnenrolled decides for an unenrolled user under UnenrolledDeny or
// UnenrolledAllow: the refusal, or nil after reporting the pass.
func (g *Guard) allowUnenrolled(ctx context.Context, rl *rule, ev *Event) *Error {
	if rl.Unenrolled != UnenrolledAllow {
		return errUnenrolled()
	}
	g.emit(ctx, *ev, EventAllow, reasonUnenrolled)
	return nil
}
