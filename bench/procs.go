package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/ampfs/ampfs/internal/testserver"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports (it is fixed in the ABI,
// whatever CONFIG_HZ the kernel was built with).
const clockTicks = 100

// proc is one long-running process the bench started (server, proxy, file
// system). Every one is registered in procs so that an interrupted run still
// stops it, by PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when Wait returns
	err  error         // Wait's result, valid after done
}

var procs = struct {
	mu  sync.Mutex
	all map[int]*proc
}{all: map[int]*proc{}}

// startProc starts cmd in its own process group (so a Ctrl-C at the
// terminal reaches only the bench, which then stops everything in order) and
// with SIGKILL as its parent-death signal (so a bench killed with -9 leaves
// no server behind).
func startProc(name string, cmd *exec.Cmd) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the thread that started the child exits, which
	// the Go runtime may do at any time: start it from a pinned thread.
	exited, err := testserver.StartPinned(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	procs.mu.Lock()
	procs.all[cmd.Process.Pid] = p
	procs.mu.Unlock()
	go func() {
		p.err = <-exited
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process (by PID), waits up to grace, then
// SIGKILLs it. It returns whether the process had to be killed.
func (p *proc) stop(grace time.Duration) (killed bool) {
	defer func() {
		procs.mu.Lock()
		delete(procs.all, p.pid())
		procs.mu.Unlock()
	}()
	if p.exited() {
		return false
	}
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return false
	case <-time.After(grace):
	}
	_ = syscall.Kill(p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		fmt.Fprintf(os.Stderr, "bench: %s (pid %d) did not die after SIGKILL\n", p.name, p.pid())
	}
	return true
}

// stopAllProcs stops every process still registered, one by one, by PID.
func stopAllProcs() {
	procs.mu.Lock()
	left := make([]*proc, 0, len(procs.all))
	for _, p := range procs.all {
		left = append(left, p)
	}
	procs.mu.Unlock()
	for _, p := range left {
		fmt.Fprintf(os.Stderr, "bench: stopping leftover %s (pid %d)\n", p.name, p.pid())
		p.stop(10 * time.Second)
	}
}

// procStat is what /proc says about one process.
type procStat struct {
	CPU    time.Duration // utime + stime, all threads
	PeakKB int64         // VmHWM: peak resident set size
}

func readProcStat(pid int) (procStat, error) {
	var s procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may contain spaces and parentheses: the
	// fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.CPU = time.Duration(ut+st) * time.Second / clockTicks

	st2, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer st2.Close()
	sc := bufio.NewScanner(st2)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			s.PeakKB, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return s, sc.Err()
}

// runCmd runs a short command (dd, fio, tar, ls ...) in its own process
// group and returns its stdout; on ctx's end the whole group is killed. A
// process stuck in an uninterruptible FUSE request may outlive SIGKILL until
// its file system dies: runCmd then gives up waiting after a while, and the
// caller's next step (stopping the file system) releases it.
func runCmd(ctx context.Context, name string, args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done, err := testserver.StartPinned(cmd)
	if err != nil {
		return nil, nil, err
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return out.Bytes(), errb.Bytes(), fmt.Errorf("%s: %w", name, ctx.Err())
	}
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return out.Bytes(), errb.Bytes(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return out.Bytes(), errb.Bytes(), nil
}

// mountsUnder lists the mount points in /proc/self/mountinfo at or below dir,
// with their file-system types.
func mountsUnder(dir string) (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp != dir && !strings.HasPrefix(mp, dir+"/") {
			continue
		}
		fstype := ""
		for i := 6; i < len(f)-1; i++ {
			if f[i] == "-" {
				fstype = f[i+1]
				break
			}
		}
		got[mp] = fstype
	}
	return got, nil
}

// unescapeMount undoes the octal escapes (\040 for space ...) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// waitMounted waits until mnt is a mount of type fstype, or p exits.
func waitMounted(ctx context.Context, p *proc, mnt, fstype string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		m, err := mountsUnder(mnt)
		if err != nil {
			return err
		}
		if m[mnt] == fstype {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before mounting: %v", p.name, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not mounted at %s after %s", p.name, mnt, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// forceUnmount detaches whatever is still mounted at mnt.
func forceUnmount(mnt string) error {
	m, err := mountsUnder(mnt)
	if err != nil {
		return err
	}
	if _, ok := m[mnt]; !ok {
		return nil
	}
	if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("umount -l %s: %w", mnt, err)
	}
	return nil
}

// dropCaches empties the page cache, dentries and inodes. No sync(2) first:
// it would also wait on other people's FUSE mounts on this machine, and the
// bench has nothing dirty that matters when it drops.
func dropCaches() error {
	err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
	if err != nil && errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("dropping caches needs root: %w", err)
	}
	return err
}
