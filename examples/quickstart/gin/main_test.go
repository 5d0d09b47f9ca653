package main

import (
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/stretchr/testify/assert"

	"github.com/stepupkit/stepup/examples/quickstart/internal/quicktest"
)

func init() { gin.SetMode(gin.ReleaseMode) } // no debug lines about routes

func TestQuickStartChallengesAndReplaysOnce(t *testing.T) {
	got := quicktest.Run(t, newApp, nil)
	assert.Equal(t, "transfer 1: 5000 sent from account 1 (step-up: challenge)\n", got.Answer)
	assert.Contains(t, got.Log, "GET /stepup/callback 200\n", "the callback is logged, without its query")
}
