//go:build !linux

package pgstore_test

import (
	"os"
	"os/exec"
)

// dieWithTest: only Linux can tie a child's life to its parent's; elsewhere
// TestMain and t.Cleanup stop the postgres a test started.
func dieWithTest(*exec.Cmd) {}

// runAs: elsewhere the tests run postgres as their own user, which must
// not be root.
func runAs(*exec.Cmd, *osUser) {}

const quitSignal = os.Interrupt
