package integration

// Write-back and its durability contract (issue 7): close returns once the
// data is committed locally; what close or fsync accepted survives kill -9
// and an unreachable server, and reaches S3 byte for byte.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeBack are the mount flags of these tests: close does not wait.
var writeBack = []string{"--sync-on-close=false"}

// kill9 kills the mount's process as a crash would, and removes the dead
// mount it leaves.
func (m *mount) kill9() {
	m.t.Helper()
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	_ = m.cmd.Process.Kill()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.t.Errorf("ampfs did not die after SIGKILL")
	}
	forceUnmount(m.dir)
	m.expectErrors(".") // whatever it logged while dying
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestKillAfterFsync: kill -9 in the middle of a 300 MiB write, after fsync
// of its first 100 MiB; the next mount of the same cache dir leaves the
// fsynced bytes on the server, byte for byte.
//
// It may leave more: a close of the descriptor also commits, and a
// parallel test's fork+exec closes a copy of it (Go opens files O_CLOEXEC,
// and exec closes them in the child, which the kernel sends as FLUSH). So
// the object must be the fsynced 100 MiB or a longer prefix of what was
// written — never shorter, never different.
func TestKillAfterFsync(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	cacheDir := t.TempDir()
	m := mountAmpfs(t, srv, bucket, append(writeBack, "--cache-dir", cacheDir, "--log-level", "debug")...)
	const fsynced = 100 << 20
	written := make([]byte, fsynced, fsynced+96<<20)
	rand.Read(written)
	f, err := os.Create(m.path("big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(written); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	if got, size := objectSHA256(t, srv, bucket, "big.bin"); got != sha(written) || size != fsynced {
		t.Fatalf("after fsync the server has %d bytes, not the 100 MiB written", size)
	}
	more := make([]byte, 8<<20)
	for range 12 { // 96 MiB more of the 300, then the crash
		rand.Read(more)
		if _, err := f.Write(more); err != nil {
			t.Fatal(err)
		}
		written = append(written, more...)
	}
	m.kill9()
	f.Close()

	m2 := mountAmpfs(t, srv, bucket, append(writeBack, "--cache-dir", cacheDir, "--log-level", "debug")...)
	run(t, ampfsBin, "sync", m2.dir)
	got, size := objectSHA256(t, srv, bucket, "big.bin")
	if size < fsynced || size > int64(len(written)) || got != sha(written[:size]) {
		t.Logf("first mount's log:\n%s", m.log())
		t.Errorf("after the crash and a remount the server has %d bytes (sha %.8s), want the fsynced 100 MiB or a longer prefix of what was written", size, got)
	}
	if size > fsynced {
		t.Logf("the server has %d bytes: a FLUSH after the fsync committed more", size)
	}
}

// TestKillDuringUntar: every file tar closed before a kill -9 is on the
// server after the next mount, whatever was still uploading.
func TestKillDuringUntar(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	cacheDir := t.TempDir()
	src := filepath.Join(strings.TrimSpace(run(t, "go", "env", "GOROOT")), "src", "net", "http")
	tarball := filepath.Join(t.TempDir(), "tree.tar")
	run(t, "tar", "-C", filepath.Dir(src), "-cf", tarball, filepath.Base(src))
	// Uploads held back (a long --settle): every closed file is still only
	// journaled when the crash comes.
	m := mountAmpfs(t, srv, bucket, append(writeBack, "--cache-dir", cacheDir, "--settle", "1h")...)
	start := time.Now()
	run(t, "tar", "-C", m.dir, "-xf", tarball)
	run(t, "sync")
	status := run(t, ampfsBin, "status", m.dir)
	t.Logf("untar took %v; %d uploads pending at the kill", time.Since(start).Round(time.Millisecond), strings.Count(status, "\n"))
	m.kill9()

	if strings.HasPrefix(status, "nothing pending") {
		t.Fatalf("nothing was pending at the kill: the test proves nothing")
	}
	for _, k := range listKeys(t, srv, bucket, "") {
		if !strings.HasSuffix(k, "/") { // directory markers are written at mkdir
			t.Fatalf("file %s reached the server before the kill; want none", k)
		}
	}
	m2 := mountAmpfs(t, srv, bucket, append(writeBack, "--cache-dir", cacheDir)...)
	if !m2.logged("resuming uploads journaled by an earlier run") {
		t.Errorf("the remount resumed nothing although %d files were pending", strings.Count(status, "\n"))
	}
	run(t, ampfsBin, "sync", m2.dir)
	run(t, "diff", "-r", src, m2.path(filepath.Base(src)))
	// And the server itself, through a fresh mount with no cache.
	m3 := mountAmpfs(t, srv, bucket)
	run(t, "diff", "-r", src, m3.path(filepath.Base(src)))
}

// TestServerDownDuringWriteBack: closes succeed while the server is down,
// status shows the failed uploads being retried, and they complete once it
// is back.
func TestServerDownDuringWriteBack(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	// Lookups of the new names are answered from a listing made before the
	// server went away (--metadata-ttl), so creating them needs no server.
	m := mountAmpfs(t, srv, bucket, append(writeBack, "--metadata-ttl", "1m")...)
	m.expectErrors(`upload failed|connection refused|unavailable`)
	run(t, "ls", m.dir)
	srv.Stop()
	src := t.TempDir()
	sums := map[string]string{}
	for _, name := range []string{"a.txt", "b.bin", "c.bin"} {
		p := filepath.Join(src, name)
		sums[name] = writeRandom(t, p, 300<<10)
		run(t, "cp", p, m.path(name)) // close commits: no server needed
	}
	eventually(t, 10*time.Second, func() error {
		out := run(t, ampfsBin, "status", m.dir)
		if strings.Count(out, "failed") < 3 {
			return errors.New("status does not show 3 failed uploads yet:\n" + out)
		}
		return nil
	})
	// ampfs sync reports them as failed while the server is down.
	out, err := runErr(t, ampfsBin, "sync", m.dir)
	if err == nil || !strings.Contains(out, "failed") {
		t.Errorf("ampfs sync with the server down: %v %q, want a failure", err, out)
	}
	for name := range sums { // still readable from the mount
		run(t, "cmp", filepath.Join(src, name), m.path(name))
	}
	srv.Restart()
	eventually(t, 60*time.Second, func() error {
		_, err := runErr(t, ampfsBin, "sync", "--timeout", "5s", m.dir)
		return err
	})
	for name, sum := range sums {
		if got, _ := objectSHA256(t, srv, bucket, name); got != sum {
			t.Errorf("%s on the server differs after the retry", name)
		}
	}
}

// TestCacheDiskFull: with a cache dir on a tiny tmpfs, a writer gets
// ENOSPC, and files closed before are intact.
func TestCacheDiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	srv, bucket := startServer(t)
	cacheDir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", cacheDir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(cacheDir, 0); err != nil {
			syscall.Unmount(cacheDir, syscall.MNT_DETACH)
		}
	})
	m := mountAmpfs(t, srv, bucket, append(writeBack, "--cache-dir", cacheDir)...)
	m.expectErrors(`no space left`)
	src := t.TempDir()
	small := filepath.Join(src, "small.bin")
	sum := writeRandom(t, small, 4<<20)
	run(t, "cp", small, m.path("small.bin"))
	big := filepath.Join(src, "big.bin")
	writeRandom(t, big, 32<<20)
	out, err := runErr(t, "cp", big, m.path("big.bin"))
	if err == nil || !strings.Contains(out, "No space left on device") {
		t.Errorf("cp of 32 MiB into a 16 MiB cache: %v %q, want ENOSPC", err, out)
	}
	run(t, ampfsBin, "sync", m.dir, m.path("small.bin"))
	if got, _ := objectSHA256(t, srv, bucket, "small.bin"); got != sum {
		t.Errorf("the file closed before the disk filled is not intact on the server")
	}
	if got, err := os.ReadFile(m.path("small.bin")); err != nil || sha(got) != sum {
		t.Errorf("reading small.bin back: %v", err)
	}
}

// TestRandomWritesOverExistingObject: random writes (and an extension)
// into an object that exists on the server, through the mount, against a
// local model of the same writes (what fio --verify checks).
func TestRandomWritesOverExistingObject(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	model := make([]byte, 24<<20)
	rand.Read(model)
	putObject(t, srv, bucket, "obj.bin", model)
	m := mountAmpfs(t, srv, bucket, writeBack...)
	f, err := os.OpenFile(m.path("obj.bin"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seed [8]byte
	rand.Read(seed[:])
	r := mrand.New(mrand.NewPCG(uint64(seed[0])<<8|uint64(seed[1]), 7))
	for range 200 {
		off := r.IntN(len(model) + 1<<20) // some writes extend the file
		buf := make([]byte, 1+r.IntN(64<<10))
		rand.Read(buf)
		if _, err := f.WriteAt(buf, int64(off)); err != nil {
			t.Fatal(err)
		}
		if end := off + len(buf); end > len(model) {
			model = append(model, make([]byte, end-len(model))...)
		}
		copy(model[off:], buf)
	}
	// Read back through the same descriptor before close (read-your-writes).
	got := make([]byte, len(model))
	if _, err := f.ReadAt(got, 0); err != nil || sha(got) != sha(model) {
		t.Fatalf("read before close differs (%v)", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	run(t, ampfsBin, "sync", m.dir)
	if sum, size := objectSHA256(t, srv, bucket, "obj.bin"); sum != sha(model) || size != int64(len(model)) {
		t.Errorf("object after random writes: %d bytes, differs from the model (%d bytes)", size, len(model))
	}
}
