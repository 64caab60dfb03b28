package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

// Daemon mode (ampfs mount --daemon, and mount.ampfs): the process starts
// itself again in a new session with --ready-fd 3, a pipe, and waits until
// the child writes "ready" (mounted) or its one-line error, then exits, so
// mount(8) returns when the mount is usable and says why when it is not.

// daemonReadyTimeout bounds the wait for the child. The child's own checks
// end sooner: an unreachable server fails its bucket check in checkTimeout.
const daemonReadyTimeout = 60 * time.Second

// runArgs are the arguments main passed to the app, without argv[0], so
// that a daemon can start itself again with them.
var runArgs []string

// startDaemon starts the child and waits for its readiness.
func startDaemon(c *cli.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return userErrorf("daemon: cannot find my own binary: %v", err)
	}
	args := childArgs(runArgs)
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return err
	}
	defer devnull.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdin = devnull
	// Log lines go to --log-file; else to the journal when started by
	// systemd (a mount unit), else nowhere: a daemon must not write to the
	// terminal, nor hold the pipes of whoever ran mount(8) open.
	cmd.Stdout, cmd.Stderr = devnull, devnull
	if os.Getenv("JOURNAL_STREAM") != "" && c.String("log-file") == "" {
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	}
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return userErrorf("daemon: %v", err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		switch {
		case s == "ready":
			return nil
		case s != "":
			return &userError{msg: s, code: 1}
		}
		// The pipe closed without a word: the child died.
		err := <-exited
		return userErrorf("the mount process exited before the mount was ready (%v); see its log (log-file=)", err)
	case <-time.After(daemonReadyTimeout):
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return userErrorf("the mount was not ready after %v; gave up (see its log: log-file=)", daemonReadyTimeout)
	}
}

// childArgs turns the parent's arguments into the child's: the same, with
// --daemon removed and --ready-fd 3 added after "mount".
func childArgs(args []string) []string {
	var out []string
	added := false
	for _, a := range args {
		switch a {
		case "--daemon", "-daemon", "--daemon=true", "-daemon=true":
			continue
		}
		out = append(out, a)
		if a == "mount" && !added {
			out = append(out, "--ready-fd", "3")
			added = true
		}
	}
	return out
}

// The child's side: the pipe from --ready-fd, written once.
var (
	readyMu   sync.Mutex
	readyPipe *os.File // GUARDED_BY(readyMu); nil when not a daemon child or already told
)

// openReadyPipe takes the pipe from --ready-fd, if given.
func openReadyPipe(c *cli.Context) error {
	fd := c.Int("ready-fd")
	if fd == 0 {
		return nil
	}
	if fd < 3 {
		return fmt.Errorf("--ready-fd %d: not a pipe", fd)
	}
	readyMu.Lock()
	defer readyMu.Unlock()
	readyPipe = os.NewFile(uintptr(fd), "ready-pipe-"+strconv.Itoa(fd))
	return nil
}

func tellParent(msg string) {
	readyMu.Lock()
	defer readyMu.Unlock()
	if readyPipe == nil {
		return
	}
	_, _ = readyPipe.WriteString(msg + "\n")
	readyPipe.Close()
	readyPipe = nil
}

// daemonReady tells the parent the mount is up, and leaves the directory
// the daemon was started in, so it does not keep that file system busy.
func daemonReady() {
	readyMu.Lock()
	child := readyPipe != nil
	readyMu.Unlock()
	if child {
		_ = os.Chdir("/")
	}
	tellParent("ready")
}

// daemonFailed gives the parent the error the child exits with.
func daemonFailed(err error) {
	if err == nil {
		err = errors.New("the mount process exited before the mount was ready")
	}
	tellParent(strings.TrimPrefix(oneLine(err), "ampfs: "))
}
