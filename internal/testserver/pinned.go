package testserver

import (
	"os/exec"
	"runtime"
)

// StartPinned starts cmd from a goroutine locked to its own OS thread and
// keeps that thread until the process exits; the returned channel yields
// cmd.Wait's result. Use it instead of cmd.Start and cmd.Wait when
// cmd.SysProcAttr.Pdeathsig is set: Linux sends the death signal when the
// *thread* that started the child exits, and the Go runtime may end an
// idle thread at any time — which killed or stopped our test servers and
// mounts at random, under load.
func StartPinned(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}
