//go:build !linux

package redisstore_test

import "os/exec"

// dieWithTest: only Linux can tie a child's life to its parent's; elsewhere
// TestMain and t.Cleanup stop the redis-server a test started.
func dieWithTest(*exec.Cmd) {}
