// Package integration runs the built ampfs binary as a subprocess, mounted
// for real through /dev/fuse against a real S3 server (versitygw, started by
// internal/testserver on a free loopback port), and drives the mount with
// ordinary commands: cp, ls, cat, cmp, mv, rm, mkdir, rmdir, dd, diff.
//
// Every mount is checked when its test ends: SIGTERM must make the binary
// exit 0 and leave no mount behind, and its JSON log must not contain an
// error line the test did not declare with expectErrors, nor a Go panic or a
// data race report.
//
// TestMain builds ./cmd/ampfs into a temporary directory, or uses $AMPFS_BIN
// when set (the Makefile sets it). `go test -short` skips this package.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ampfs/ampfs/internal/testserver"
)

const (
	mountTimeout = 10 * time.Second // from exec to the mount showing in mountinfo
	exitTimeout  = 60 * time.Second // from SIGTERM to exit: flushing may upload
	cmdTimeout   = 2 * time.Minute  // any one shell command on the mount
	// cacheTTL is the longest the mount may serve a stale listing or
	// attribute after a change made directly through S3; visibility checks
	// poll for up to this long.
	cacheTTL = 3 * time.Second
)

// ampfsBin is the binary under test.
var ampfsBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("integration: skipped in -short mode")
		os.Exit(0)
	}
	if err := preflight(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		os.Exit(1)
	}
	tmp, err := os.MkdirTemp("", "ampfs-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ampfsBin, err = binary(tmp)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// preflight fails early, with the fix, when the machine cannot mount FUSE
// file systems, rather than letting every test time out on its own.
func preflight() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("/dev/fuse is missing (%v); load the fuse module (modprobe fuse) or run in a container with --device /dev/fuse", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil && os.Geteuid() != 0 {
		return fmt.Errorf("fusermount3 is missing; run `make deps` as root (installs fuse3)")
	}
	return nil
}

// binary returns $AMPFS_BIN, or builds ./cmd/ampfs into dir.
func binary(dir string) (string, error) {
	if p := os.Getenv("AMPFS_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("AMPFS_BIN: %w", err)
		}
		return abs, nil
	}
	out := filepath.Join(dir, "ampfs")
	cmd := exec.Command("go", "build", "-o", out, "github.com/ampfs/ampfs/cmd/ampfs")
	cmd.Dir = ".." // the module root, so the build does not depend on the caller's cwd
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building ampfs: %v\n%s", err, b)
	}
	return out, nil
}

// startServer starts a fresh versitygw with one empty bucket.
func startServer(t *testing.T) (*testserver.Server, string) {
	t.Helper()
	srv := testserver.Start(t)
	return srv, srv.CreateBucket(t, "ampfs-test")
}

// mount is one running `ampfs mount` subprocess.
type mount struct {
	t      *testing.T
	srv    *testserver.Server
	bucket string
	dir    string // the mountpoint
	logf   string // the binary's stderr

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done

	mu       sync.Mutex
	expected []*regexp.Regexp
	stopped  bool
}

// startAmpfs starts `ampfs mount` (see mountAmpfs) and returns at once.
func startAmpfs(t *testing.T, srv *testserver.Server, bucket string, args ...string) *mount {
	t.Helper()
	// TempDir before Cleanup: cleanups run last-in first-out, so the
	// directories outlive the unmount.
	tmp := t.TempDir()
	m := &mount{
		t:      t,
		srv:    srv,
		bucket: bucket,
		dir:    filepath.Join(tmp, "mnt"),
		logf:   filepath.Join(tmp, "ampfs.log"),
		done:   make(chan struct{}),
	}
	for _, d := range []string{m.dir, filepath.Join(tmp, "cache")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logFile, err := os.Create(m.logf)
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{"mount",
		"--log-format", "json",
		"--path-style",
		"--endpoint", srv.Endpoint,
		"--cache-dir", filepath.Join(tmp, "cache"),
	}, args...)
	if !slices.Contains(args, "--sync-on-close=false") {
		// close(2) waits for the upload, so a test can look at the bucket
		// right after cp; the write-back tests pass --sync-on-close=false.
		full = append(full, "--sync-on-close")
	}
	if !slices.Contains(args, "--layout") {
		// The tests of the bucket as it is; the Amplify layout's tests
		// say --layout amplify.
		full = append(full, "--layout", "raw")
	}
	full = append(full, bucket, m.dir)
	m.cmd = exec.Command(ampfsBin, full...)
	m.cmd.Env = append(os.Environ(), srv.Env()...)
	m.cmd.Stdout = logFile
	m.cmd.Stderr = logFile
	// If the test binary dies (a -timeout panic), the mount still gets its
	// SIGTERM and unmounts itself.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	exited, err := testserver.StartPinned(m.cmd) // see StartPinned: Pdeathsig is per thread
	if err != nil {
		logFile.Close()
		t.Fatalf("starting ampfs: %v", err)
	}
	logFile.Close()
	go func() {
		m.waitErr = <-exited
		close(m.done)
	}()
	t.Cleanup(m.cleanup)
	return m
}

// mountAmpfs runs `ampfs mount --log-format json --path-style --endpoint
// srv.Endpoint --cache-dir TMP args... bucket MOUNTPOINT` and returns once
// the mount is ready. When the test ends the mount is stopped with SIGTERM
// and checked (see stop and checkLog).
func mountAmpfs(t *testing.T, srv *testserver.Server, bucket string, args ...string) *mount {
	t.Helper()
	m := startAmpfs(t, srv, bucket, args...)
	full := m.cmd.Args

	// Ready means mounted and said so: the "mounted" log line comes after
	// the signal handlers are in place. A signal sent earlier than that is
	// TestStop's business.
	deadline := time.Now().Add(mountTimeout)
	for {
		ok, err := m.mounted()
		if err != nil {
			t.Fatal(err)
		}
		if ok && m.logged("mounted") {
			return m
		}
		select {
		case <-m.done:
			m.mu.Lock()
			m.stopped = true // nothing left to stop; do not report twice
			m.mu.Unlock()
			t.Fatalf("ampfs %s exited before mounting: %v", strings.Join(full, " "), m.waitErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted (in /proc/self/mountinfo: %v) or no \"mounted\" log line within %v", m.dir, ok, mountTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logged reports whether the log has an info line with this message.
func (m *mount) logged(message string) bool {
	sc := bufio.NewScanner(strings.NewReader(m.log()))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Level == "info" && l.Message == message {
			return true
		}
	}
	return false
}

// mountInfo is one line of /proc/self/mountinfo, the fields we check.
type mountInfo struct {
	point, fstype, source string
}

// mountsAt returns the mounts whose mountpoint is dir.
func mountsAt(dir string) ([]mountInfo, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []mountInfo
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root point opts [optional...] - fstype source superopts
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		if unescapeMountinfo(f[4]) == dir {
			out = append(out, mountInfo{point: dir, fstype: f[sep+1], source: unescapeMountinfo(f[sep+2])})
		}
	}
	return out, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mounted reports whether m.dir is mounted, and fails if something other
// than this ampfs mount sits there.
func (m *mount) mounted() (bool, error) {
	ms, err := mountsAt(m.dir)
	if err != nil || len(ms) == 0 {
		return false, err
	}
	mi := ms[len(ms)-1]
	if mi.fstype != "fuse.ampfs" || mi.source != "ampfs:"+m.bucket {
		return true, fmt.Errorf("%s is mounted as type %q source %q, want fuse.ampfs ampfs:%s", m.dir, mi.fstype, mi.source, m.bucket)
	}
	return true, nil
}

// path returns the path of rel inside the mount.
func (m *mount) path(rel string) string { return filepath.Join(m.dir, rel) }

// expectErrors declares that error-level log lines matching re are part of
// what the test provokes. Panics and data races are never expected.
func (m *mount) expectErrors(re string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expected = append(m.expected, regexp.MustCompile(re))
}

// log returns the binary's stderr so far.
func (m *mount) log() string {
	b, _ := os.ReadFile(m.logf)
	return string(b)
}

// stop sends sig and waits for the process to exit; it fails the test if
// the process does not exit in time (then kills it and unmounts lazily), if
// it exits non-zero, or if the mount is still there afterwards. It returns
// the exit code, -1 if killed. Calling it again is a no-op returning 0.
func (m *mount) stop(sig os.Signal) int {
	m.t.Helper()
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return 0
	}
	m.stopped = true
	m.mu.Unlock()

	select {
	case <-m.done:
		m.t.Errorf("ampfs exited before the test stopped it: %v", m.waitErr)
	default:
		if err := m.cmd.Process.Signal(sig); err != nil {
			m.t.Errorf("signal %v: %v", sig, err)
		}
	}
	code := m.wait(exitTimeout)
	if code != 0 {
		m.t.Errorf("ampfs exited with %d after %v, want 0", code, sig)
	}
	m.checkUnmounted()
	return code
}

// exit waits up to d for the process to exit by itself (after `ampfs
// unmount`), checks that nothing is left mounted and returns the exit code.
func (m *mount) exit(d time.Duration) int {
	m.t.Helper()
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	code := m.wait(d)
	m.checkUnmounted()
	return code
}

// abort kills the process and detaches the mount, so that system calls
// hanging on it return. For tests that are already failing.
func (m *mount) abort() {
	_ = m.cmd.Process.Kill()
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		// Killed but not gone: a thread is waiting on the process's own
		// mount. Aborting the connection lets it finish exiting.
		m.t.Errorf("ampfs did not exit after SIGKILL; aborting its FUSE connection")
		forceUnmount(m.dir)
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			m.t.Errorf("ampfs (pid %d) is still not gone", m.cmd.Process.Pid)
		}
	}
	forceUnmount(m.dir)
}

// wait waits up to d for the process to exit and returns its exit code. On
// timeout it fails the test, kills the process and lazily unmounts.
func (m *mount) wait(d time.Duration) int {
	m.t.Helper()
	select {
	case <-m.done:
	case <-time.After(d):
		m.t.Errorf("ampfs did not exit within %v; killing it", d)
		m.abort()
		return -1
	}
	var ee *exec.ExitError
	switch {
	case m.waitErr == nil:
		return 0
	case errors.As(m.waitErr, &ee):
		return ee.ExitCode()
	default:
		m.t.Errorf("waiting for ampfs: %v", m.waitErr)
		return -1
	}
}

// checkUnmounted fails the test if m.dir is still a mount point, and then
// removes the mount so the rest of the run is not affected.
func (m *mount) checkUnmounted() {
	m.t.Helper()
	ms, err := mountsAt(m.dir)
	if err != nil {
		m.t.Error(err)
		return
	}
	if len(ms) > 0 {
		m.t.Errorf("ampfs exited but left %s mounted (%s %s)", m.dir, ms[0].fstype, ms[0].source)
		forceUnmount(m.dir)
	}
}

// forceUnmount removes whatever is mounted at dir. MNT_FORCE (root only)
// first aborts the FUSE connection, which releases a server process that is
// stuck exiting because it holds a file open on its own mount.
func forceUnmount(dir string) {
	_ = syscall.Unmount(dir, syscall.MNT_FORCE)
	if ms, _ := mountsAt(dir); len(ms) == 0 {
		return
	}
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		_ = exec.Command("fusermount3", "-uz", dir).Run()
	}
}

func (m *mount) cleanup() {
	m.t.Helper()
	m.stop(syscall.SIGTERM)
	m.checkLog()
	if m.t.Failed() {
		m.t.Logf("ampfs log (%s):\n%s", strings.Join(m.cmd.Args, " "), tail(m.log(), 64<<10))
	}
}

// logLine is the part of a zerolog JSON line the checks read.
type logLine struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// checkLog fails the test for each line of the binary's stderr that is an
// error (level error, fatal or panic) not declared with expectErrors, that
// is not JSON although --log-format json was given, or that shows a Go
// panic or a data race.
func (m *mount) checkLog() {
	m.t.Helper()
	m.mu.Lock()
	expected := m.expected
	m.mu.Unlock()
	for _, line := range unexpectedLogLines(m.log(), expected) {
		m.t.Errorf("unexpected log line: %s", line)
	}
}

// unexpectedLogLines is checkLog's rule, on text.
func unexpectedLogLines(log string, expected []*regexp.Regexp) []string {
	var bad []string
	goDeath := regexp.MustCompile(`^(panic: |fatal error: |WARNING: DATA RACE|goroutine \d+ \[)`)
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	inDeath := false
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if inDeath || goDeath.MatchString(line) {
			// Report the first line of a crash only: the stack follows.
			if !inDeath {
				bad = append(bad, line)
			}
			inDeath = true
			continue
		}
		var l logLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			if !matchesAny(line, expected) {
				bad = append(bad, "(not JSON) "+line)
			}
			continue
		}
		switch l.Level {
		case "error", "fatal", "panic":
			if !matchesAny(line, expected) {
				bad = append(bad, line)
			}
		}
	}
	return bad
}

func matchesAny(s string, res []*regexp.Regexp) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// run runs a command (not inside the mount's directory, so the mount can
// always be unmounted) and fails the test if it does not succeed.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runErr(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runErr runs a command and returns its combined output and error.
func runErr(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C") // English error messages
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out after %v)", err, cmdTimeout)
	}
	return string(out), err
}

// eventually retries f until it returns nil or d has passed, then fails the
// test with f's last error.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeRandom writes size random bytes to path and returns their sha256.
func writeRandom(t *testing.T, path string, size int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// s3 helpers: the bucket as the S3 API sees it, bypassing the mount.

func s3ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func putObject(t *testing.T, srv *testserver.Server, bucket, key string, body []byte) {
	t.Helper()
	_, err := srv.Client().PutObject(s3ctx(t), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
	})
	if err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

func deleteObject(t *testing.T, srv *testserver.Server, bucket, key string) {
	t.Helper()
	_, err := srv.Client().DeleteObject(s3ctx(t), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("DeleteObject %s: %v", key, err)
	}
}

// objectSHA256 returns the sha256 and size of the object's body.
func objectSHA256(t *testing.T, srv *testserver.Server, bucket, key string) (string, int64) {
	t.Helper()
	out, err := srv.Client().GetObject(s3ctx(t), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// headObject returns the object's metadata, or nil if it does not exist.
func headObject(t *testing.T, srv *testserver.Server, bucket, key string) *s3.HeadObjectOutput {
	t.Helper()
	out, err := srv.Client().HeadObject(s3ctx(t), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var nf *types.NotFound
	var nsk *types.NoSuchKey
	switch {
	case err == nil:
		return out
	case errors.As(err, &nf), errors.As(err, &nsk):
		return nil
	default:
		t.Fatalf("HeadObject %s: %v", key, err)
		return nil
	}
}

// listKeys returns every key under prefix, all pages, sorted.
func listKeys(t *testing.T, srv *testserver.Server, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(srv.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(s3ctx(t))
		if err != nil {
			t.Fatalf("ListObjectsV2 %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

// lsNames returns the names `ls -A dir` prints, one per line.
func lsNames(t *testing.T, dir string) ([]string, error) {
	t.Helper()
	out, err := runErr(t, "ls", "-A", "-1", dir)
	if err != nil {
		return nil, fmt.Errorf("ls %s: %v: %s", dir, err, out)
	}
	return strings.Fields(out), nil
}
