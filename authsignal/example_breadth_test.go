package authsignal_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// exampleEmulator starts an emulator that challenges the "login" action and
// returns a client of it. The examples below run against it.
func exampleEmulator() (*emulator.Server, *authsignal.Client) {
	rules, err := emulator.ParseRules([]byte("actions:\n  login: {default: CHALLENGE_REQUIRED}\n"))
	if err != nil {
		panic(err)
	}
	emu, err := emulator.New(emulator.Config{Rules: rules})
	if err != nil {
		panic(err)
	}
	return emu, authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emu.APIURL()))
}

func ExampleClient_UpdateUser() {
	emu, client := exampleEmulator()
	defer emu.Close()
	ctx := context.Background()

	// Nil fields are not sent; String("") clears a field; Bool(false) sends false.
	_, _ = client.UpdateUser(ctx, "user-42", authsignal.UpdateUserRequest{
		Email:         authsignal.String("ann@example.com"),
		EmailVerified: authsignal.Bool(true), // verified by the application: email authenticators move to it
		DisplayName:   authsignal.String("Ann"),
	})
	u, err := client.UpdateUser(ctx, "user-42", authsignal.UpdateUserRequest{DisplayName: authsignal.String("")})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("email=%s verified=%t displayName=%q\n", u.Email, u.EmailVerified, u.DisplayName)
	// Output: email=ann@example.com verified=true displayName=""
}

func ExampleClient_EnrollVerifiedAuthenticator() {
	emu, client := exampleEmulator()
	defer emu.Close()
	ctx := context.Background()

	// A phone number the application has verified itself.
	res, err := client.EnrollVerifiedAuthenticator(ctx, "user-42", authsignal.EnrollVerifiedAuthenticatorRequest{
		VerificationMethod: "SMS", PhoneNumber: "+64270000000",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	list, _ := client.GetAuthenticators(ctx, "user-42")
	fmt.Println(len(list), list[0].VerificationMethod, list[0].PhoneNumber)

	_ = client.DeleteAuthenticator(ctx, "user-42", res.Authenticator.UserAuthenticatorID)
	u, _ := client.GetUser(ctx, "user-42")
	fmt.Println("enrolled:", u.IsEnrolled)
	// Output:
	// 1 SMS +64270000000
	// enrolled: false
}

func ExampleClient_QueryUserActions() {
	emu, client := exampleEmulator()
	defer emu.Close()
	ctx := context.Background()
	emu.EnrollUser(emulator.User{ID: "user-42", Email: "ann@example.com"})
	_, _ = client.Track(ctx, "user-42", "login", authsignal.TrackRequest{})
	_, _ = client.Track(ctx, "user-42", "export", authsignal.TrackRequest{})

	actions, err := client.QueryUserActions(ctx, "user-42", authsignal.QueryUserActionsRequest{
		Codes:    []string{"login"},
		FromDate: time.Now().Add(-24 * time.Hour),
		State:    authsignal.StateChallengeRequired,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range actions {
		fmt.Println(a.ActionCode, a.State)
	}
	// Output: login CHALLENGE_REQUIRED
}

func ExampleClient_QueryUsers() {
	emu, client := exampleEmulator()
	defer emu.Close()
	ctx := context.Background()
	for _, id := range []string{"ann", "bob", "cat"} {
		_, _ = client.UpdateUser(ctx, id, authsignal.UpdateUserRequest{Email: authsignal.String(id + "@example.com")})
	}

	// Page through every user, two at a time.
	req := authsignal.QueryUsersRequest{Limit: 2}
	for {
		page, err := client.QueryUsers(ctx, req)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, u := range page.Users {
			fmt.Println(u.UserID, u.Email)
		}
		if page.LastEvaluatedUserID == "" {
			break
		}
		req.LastEvaluatedUserID = page.LastEvaluatedUserID
	}
	// Output:
	// ann ann@example.com
	// bob bob@example.com
	// cat cat@example.com
}

func ExampleClient_DeleteUserAndActions() {
	emu, client := exampleEmulator()
	defer emu.Close()
	ctx := context.Background()
	_, _ = client.Track(ctx, "user-42", "export", authsignal.TrackRequest{})

	_ = client.DeleteUser(ctx, "user-42") // the user and its authenticators; its actions stay
	kept, _ := client.QueryUserActions(ctx, "user-42", authsignal.QueryUserActionsRequest{})
	_ = client.DeleteUserAndActions(ctx, "user-42") // the actions too
	left, _ := client.QueryUserActions(ctx, "user-42", authsignal.QueryUserActionsRequest{})
	fmt.Println(len(kept), len(left))
	// Output: 1 0
}

func ExampleAPIError_retryAfter() {
	emu, client := exampleEmulator()
	defer emu.Close()
	emu.SetFault(emulator.Fault{Status: http.StatusTooManyRequests, Times: 1})

	_, err := client.GetUser(context.Background(), "user-42")
	var apiErr *authsignal.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests {
		fmt.Println("rate limited; try again in", apiErr.RetryAfter)
	}
	// Output: rate limited; try again in 1s
}
