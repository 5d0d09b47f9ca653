package main

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/stepupkit/stepup/examples/quickstart/internal/quicktest"
)

func TestQuickStartChallengesAndReplaysOnce(t *testing.T) {
	got := quicktest.Run(t, newApp, nil)
	assert.Equal(t, "transfer 1: 5000 sent (step-up: challenge)\n", got.Answer)
}
