package authsignal_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

// TestOfficialNodeSDKAgainstEmulator runs the official Node SDK
// (@authsignal/node, pinned in testdata/node/package.json and installed by
// .ci/node-sdk-deps) against the emulator: testdata/node/sdk.mjs calls every
// Server API method the SDK has that the emulator covers, and this test
// completes the hosted challenge for it. Without node or the installed SDK
// the test is skipped, except under CI=true, where it fails.
func TestOfficialNodeSDKAgainstEmulator(t *testing.T) {
	dir := filepath.Join("testdata", "node")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@authsignal", "node", "package.json"))
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Node SDK test cannot run under CI (%v): run .ci/node-sdk-deps first", err)
		}
		t.Skipf("node or the Node SDK is missing (%v): run .ci/node-sdk-deps", err)
	}

	rules, err := emulator.ParseRules([]byte(`
actions:
  signIn: {default: CHALLENGE_REQUIRED}
  withdraw: {default: CHALLENGE_REQUIRED}
`))
	require.NoError(t, err)
	emu, err := emulator.New(emulator.Config{Rules: rules})
	require.NoError(t, err)
	t.Cleanup(emu.Close)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "sdk.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"AUTHSIGNAL_API_URL="+emu.APIURL(),
		"AUTHSIGNAL_SECRET="+emulator.DefaultSecret,
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost", // axios honours proxy variables
	)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	var done bool
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var msg struct {
			ChallengeURL string `json:"challengeUrl"`
			Done         bool   `json:"done"`
		}
		if json.Unmarshal(lines.Bytes(), &msg) != nil {
			continue
		}
		if msg.ChallengeURL != "" {
			back, err := emu.CompleteChallenge(ctx, msg.ChallengeURL)
			require.NoError(t, err, "completing the challenge the SDK tracked")
			_, err = fmt.Fprintln(stdin, back.Query().Get("token"))
			require.NoError(t, err)
		}
		done = done || msg.Done
	}
	err = cmd.Wait()
	require.NoError(t, err, "node sdk.mjs failed:\n%s", stderr.String())
	assert.True(t, done, "the script did not finish:\n%s", stderr.String())

	sent := emu.Tracked()
	require.NotEmpty(t, sent)
	assert.Equal(t, "auth.example.com", sent[0].CustomDomain, "the SDK's customDomain reached the emulator")
	assert.Equal(t, "sms", emu.Outbox()[0].Channel, "the code went to the enrolled SMS authenticator")
	assert.Equal(t, "+64270000000", emu.Outbox()[0].To)
}
