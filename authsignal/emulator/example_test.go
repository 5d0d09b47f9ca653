package emulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

func Example() {
	rules, err := emulator.ParseRules([]byte(`
actions:
  transfer:
    rules:
      - id: large-transfer
        when: {field: custom.amount, op: gt, value: 1000}
        state: CHALLENGE_REQUIRED
`))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := emulator.New(emulator.Config{
		Rules: rules,
		Users: []emulator.User{{ID: "alice", Email: "alice@example.com"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// What authsignal.Client does on Track, by hand.
	trackTransfer := func(amount int) string {
		body := fmt.Sprintf(`{"custom":{"amount":%d},"redirectUrl":"https://app.example/stepup/callback"}`, amount)
		req, _ := http.NewRequest(http.MethodPost, srv.APIURL()+"/users/alice/actions/transfer", strings.NewReader(body))
		req.SetBasicAuth(emulator.DefaultSecret, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			State string   `json:"state"`
			URL   string   `json:"url"`
			Rules []string `json:"ruleIds"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			log.Fatal(err)
		}
		fmt.Println(amount, out.State, out.Rules)
		return out.URL
	}

	trackTransfer(50)
	challengeURL := trackTransfer(5000)

	// A test completes the challenge as a browser would.
	back, err := srv.CompleteChallenge(context.Background(), challengeURL)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(back.Host+back.Path, back.Query().Get("token") != "")
	fmt.Println(srv.Tracked()[1].State)
	// Output:
	// 50 ALLOW []
	// 5000 CHALLENGE_REQUIRED [large-transfer]
	// app.example/stepup/callback true
	// CHALLENGE_SUCCEEDED
}
