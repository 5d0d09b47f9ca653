package authsignal_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/stepupkit/stepup/authsignal"
)

// fakeAuthsignal stands in for the API so that the examples run offline.
func fakeAuthsignal() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if user, _, _ := r.BasicAuth(); user != "sk_example" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"unauthorized","errorCode":"unauthorized","errorDescription":"The request is unauthorized. Check that your API key and region base URL are correctly configured."}`)
			return
		}
		switch r.URL.Path {
		case "/v1/users/user-42/actions/transfer":
			_, _ = io.WriteString(w, `{"state":"CHALLENGE_REQUIRED","idempotencyKey":"5f0c","url":"https://challenge.example/?token=eyJ","token":"eyJ","isEnrolled":true}`)
		case "/v1/validate":
			_, _ = io.WriteString(w, `{"isValid":true,"state":"CHALLENGE_SUCCEEDED","userId":"user-42","actionCode":"transfer","idempotencyKey":"5f0c"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
}

func ExampleNewClient() {
	// Against Authsignal, in the tenant's region.
	prod := authsignal.NewClient("sk_live_…", authsignal.WithRegion(authsignal.RegionEU))

	// Against the emulator, with a shorter deadline and no retries.
	dev := authsignal.NewClient("dev-secret",
		authsignal.WithBaseURL("http://127.0.0.1:8787/v1"),
		authsignal.WithTimeout(2*time.Second),
		authsignal.WithRetries(0))

	fmt.Println(prod)
	fmt.Println(dev)
	// Output:
	// authsignal.Client{baseURL: "https://eu.api.authsignal.com/v1", secretKey: [REDACTED]}
	// authsignal.Client{baseURL: "http://127.0.0.1:8787/v1", secretKey: [REDACTED]}
}

func ExampleClient_Track() {
	srv := fakeAuthsignal()
	defer srv.Close()
	client := authsignal.NewClient("sk_example", authsignal.WithBaseURL(srv.URL+"/v1"))

	res, err := client.Track(context.Background(), "user-42", "transfer", authsignal.TrackRequest{
		RedirectURL: "https://app.example/stepup/callback",
		IPAddress:   "192.0.2.10",
		Custom:      map[string]any{"amount": 5000},
	})
	if err != nil {
		fmt.Println("fail closed:", err)
		return
	}
	switch res.State {
	case authsignal.StateAllow:
		fmt.Println("go on")
	case authsignal.StateChallengeRequired:
		fmt.Println("challenge at", res.URL)
	default:
		fmt.Println("refuse:", res.State)
	}
	// Output: challenge at https://challenge.example/?token=eyJ
}

func ExampleClient_Validate() {
	srv := fakeAuthsignal()
	defer srv.Close()
	client := authsignal.NewClient("sk_example", authsignal.WithBaseURL(srv.URL+"/v1"))

	v, err := client.Validate(context.Background(), authsignal.ValidateRequest{
		Token: "eyJ", UserID: "user-42", Action: "transfer",
	})
	if err != nil {
		fmt.Println("fail closed:", err)
		return
	}
	ok := v.IsValid && v.State == authsignal.StateChallengeSucceeded &&
		v.UserID == "user-42" && v.Action == "transfer" && v.IdempotencyKey == "5f0c"
	fmt.Println("proceed:", ok)
	// Output: proceed: true
}

func ExampleAPIError() {
	srv := fakeAuthsignal()
	defer srv.Close()
	client := authsignal.NewClient("sk_wrong", authsignal.WithBaseURL(srv.URL+"/v1"))

	_, err := client.Track(context.Background(), "user-42", "transfer", authsignal.TrackRequest{})

	var apiErr *authsignal.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Code)
	}
	fmt.Println(err)
	// Output:
	// 401 unauthorized
	// authsignal: API error: status 401 unauthorized: The request is unauthorized. Check that your API key and region base URL are correctly configured.
}

func ExampleVerifyWebhook() {
	const secret = "whsec_example"
	payload := []byte(`{"type":"email.created","data":{"to":"a@example.com"}}`)
	now := time.Unix(1_700_000_000, 0)

	// What Authsignal sends in X-Signature-V2.
	t := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t + "." + string(payload)))
	header := "t=" + t + ",v2=" + base64.RawStdEncoding.EncodeToString(mac.Sum(nil))

	// In a handler: payload is the raw body, header is
	// r.Header.Get(authsignal.WebhookSignatureHeader), now is time.Now().
	fmt.Println(authsignal.VerifyWebhook(payload, header, secret, 0, now))
	fmt.Println(authsignal.VerifyWebhook([]byte(`{"type":"forged"}`), header, secret, 0, now))
	fmt.Println(authsignal.VerifyWebhook(payload, header, secret, 0, now.Add(10*time.Minute)))
	// Output:
	// <nil>
	// authsignal: invalid webhook signature: no matching signature
	// authsignal: invalid webhook signature: timestamp outside the 5m0s tolerance
}
