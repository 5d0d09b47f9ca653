package browsertest

import (
	"context"
	"fmt"

	"github.com/chromedp/cdproto"
	"github.com/chromedp/cdproto/cdp"
	jsonv2 "github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// window is a CDP session with the SDK's window, carried by the tab's own
// session: Target.attachToTarget without flatten, each command sent with
// Target.sendMessageToTarget and its reply read from
// Target.receivedMessageFromTarget. chromedp never learns of the session,
// so none of its per-target machinery (frame and DOM tracking, which race
// when they attach to a page that is still loading) runs for the window.
// A flat session is not an option: chromedp's browser drops every message
// of a flat session that it did not attach itself.
//
// A window is used by one goroutine at a time.
type window struct {
	via  cdp.Session // the tab's session
	id   target.SessionID
	last int64 // id of the last command sent
}

// sendMessageToTarget is Target.sendMessageToTarget, which cdproto no
// longer generates since the protocol marks it deprecated (with the
// non-flat sessions it serves); Chromium still implements it.
var sendMessageToTarget = cdp.Command[sendMessageToTargetParams, cdp.Empty]{Method: "Target.sendMessageToTarget"}

type sendMessageToTargetParams struct {
	Message   string           `json:"message"`
	SessionID target.SessionID `json:"sessionId"`
}

// attachWindow attaches to the page target id through the session via.
func attachWindow(ctx context.Context, via cdp.Session, id target.ID) (*window, error) {
	res, err := cdp.Call(ctx, via, target.AttachToTarget, target.AttachToTargetParams{TargetID: id, Flatten: ptr(false)})
	if err != nil {
		return nil, fmt.Errorf("browsertest: attaching to the window: %w", err)
	}
	return &window{via: via, id: res.SessionID}, nil
}

// detach ends the session; the window stays open.
func (w *window) detach(ctx context.Context) error {
	_, err := cdp.Call(ctx, w.via, target.DetachFromTarget, target.DetachFromTargetParams{SessionID: w.id})
	return err
}

// callWindow runs the command with the params in the window and returns its
// result.
func callWindow[P, R any](ctx context.Context, w *window, cmd cdp.Command[P, R], params P) (R, error) {
	var res R
	w.last++
	id := w.last
	p, err := jsonv2.Marshal(params, chromedp.DefaultMarshalOptions)
	if err != nil {
		return res, err
	}
	msg, err := jsonv2.Marshal(&cdproto.Message{ID: id, Method: cdproto.MethodType(cmd.Method), Params: p}, chromedp.DefaultMarshalOptions)
	if err != nil {
		return res, err
	}
	// Listen before sending, so that the reply cannot pass unseen.
	replies, stop := w.via.Subscribe(target.ReceivedMessageFromTarget.Method)
	defer stop()
	if _, err := cdp.Call(ctx, w.via, sendMessageToTarget, sendMessageToTargetParams{Message: string(msg), SessionID: w.id}); err != nil {
		return res, fmt.Errorf("browsertest: %s in the window: %w", cmd.Method, err)
	}
	for {
		var raw jsonv2.Value
		var ok bool
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("browsertest: %s in the window: %w", cmd.Method, ctx.Err())
		case raw, ok = <-replies:
		}
		if !ok {
			return res, fmt.Errorf("browsertest: %s in the window: the tab's session ended", cmd.Method)
		}
		var ev target.EventReceivedMessageFromTarget
		if err := jsonv2.Unmarshal(raw, &ev, chromedp.DefaultUnmarshalOptions); err != nil {
			return res, err
		}
		if ev.SessionID != w.id {
			continue
		}
		var reply cdproto.Message
		if err := jsonv2.Unmarshal([]byte(ev.Message), &reply, chromedp.DefaultUnmarshalOptions); err != nil {
			return res, err
		}
		if reply.ID != id {
			continue // an event of the window, or a late reply
		}
		if reply.Error != nil {
			return res, fmt.Errorf("browsertest: %s in the window: %w", cmd.Method, reply.Error)
		}
		err := jsonv2.Unmarshal(reply.Result, &res, chromedp.DefaultUnmarshalOptions)
		return res, err
	}
}
