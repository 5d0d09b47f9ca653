package stepup_test

import (
	"testing"

	"github.com/stepupkit/stepup/stepuptest"
)

func TestSignInServeMux(t *testing.T) {
	stepuptest.RunSignIn(t, serveMux)
}
