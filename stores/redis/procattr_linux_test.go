package redisstore_test

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill the redis-server a test started when
// the test process dies, however it dies.
func dieWithTest(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
