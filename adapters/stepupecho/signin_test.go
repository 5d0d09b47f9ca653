package stepupecho_test

import (
	"testing"

	"github.com/stepupkit/stepup/stepuptest"
)

func TestSignInEcho(t *testing.T) {
	stepuptest.RunSignIn(t, echoAdapter)
}
