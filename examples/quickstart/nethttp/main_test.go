package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/examples/quickstart/internal/quicktest"
)

func TestQuickStartChallengesAndReplaysOnce(t *testing.T) {
	got := quicktest.Run(t, newApp, nil)
	assert.Equal(t, "transfer 1: 5000 sent (step-up: challenge)\n", got.Answer)
}

func TestQuickStartRefusesToStartWithoutItsProvider(t *testing.T) {
	_, err := newApp("127.0.0.1:8080", func(k string) string {
		if k == "AUTHSIGNAL_API_URL" {
			return "http://127.0.0.1:1/v1" // nothing listens there
		}
		return ""
	})
	require.ErrorIs(t, err, stepup.ErrProvider)
}
