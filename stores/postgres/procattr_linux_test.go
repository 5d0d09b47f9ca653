package pgstore_test

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill the postgres a test started when the
// test process dies, however it dies.
func dieWithTest(cmd *exec.Cmd) { cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL }

// runAs runs cmd as u (nil: as the test's own user).
func runAs(cmd *exec.Cmd, u *osUser) {
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if u != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}
	}
}

// quitSignal is PostgreSQL's immediate shutdown.
const quitSignal = syscall.SIGQUIT
