package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// installHelper links /sbin/mount.ampfs to the binary under test, so that
// mount(8) finds it, and removes the link when the test ends. It never
// replaces a file that is already there: then the test is skipped.
func installHelper(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mount(8) with a helper needs root")
	}
	const link = "/sbin/mount.ampfs"
	if _, err := os.Lstat(link); err == nil {
		t.Skipf("%s already exists (make install?); not replacing it", link)
	}
	if err := os.Symlink(ampfsBin, link); err != nil {
		t.Fatalf("installing %s: %v", link, err)
	}
	t.Cleanup(func() {
		if dest, err := os.Readlink(link); err == nil && dest == ampfsBin {
			os.Remove(link)
		}
	})
}

// pidsWithArg returns the processes whose command line has arg (a unique
// temporary path), other than this one.
func pidsWithArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if strings.Contains(a, arg) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// waitGone waits until no process has arg on its command line.
func waitGone(t *testing.T, arg string, d time.Duration) {
	t.Helper()
	eventually(t, d, func() error {
		if pids := pidsWithArg(arg); len(pids) > 0 {
			return fmt.Errorf("processes %v still running with %s", pids, arg)
		}
		return nil
	})
}

// logFileLines returns the JSON lines of a log file.
func logFileLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// hasLine reports whether a log file has a line with this message (and
// level, if not "").
func hasLine(t *testing.T, path, level, message string) bool {
	for _, l := range logFileLines(t, path) {
		if l["message"] == message && (level == "" || l["level"] == level) {
			return true
		}
	}
	return false
}

// notifySocket is a fake systemd notification socket.
type notifySocket struct {
	path string
	conn *net.UnixConn

	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, conn: conn}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

// has reports whether a datagram carried the assignment (READY=1).
func (n *notifySocket) has(assignment string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		for _, l := range strings.Split(m, "\n") {
			if l == assignment {
				return true
			}
		}
	}
	return false
}

func (n *notifySocket) messages() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// signal sends sig to the mount process.
func (m *mount) signal(sig syscall.Signal) {
	m.t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		m.t.Fatal(err)
	}
}
