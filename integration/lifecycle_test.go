package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	out := run(t, ampfsBin, "--version")
	if !regexp.MustCompile(`^ampfs version \S+\n$`).MatchString(out) {
		t.Errorf("ampfs --version = %q, want \"ampfs version X\"", out)
	}
}

// TestStop: SIGTERM and SIGINT on an idle mount exit 0 and unmount, and so
// does `ampfs unmount`; a file written just before the signal is in S3
// afterwards.
func TestStop(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			srv, bucket := startServer(t)
			m := mountAmpfs(t, srv, bucket)
			m.stop(sig) // checks exit 0 and no mount left

			m = mountAmpfs(t, srv, bucket)
			local := filepath.Join(t.TempDir(), "f")
			sum := writeRandom(t, local, 3<<20)
			run(t, "cp", local, m.path("last.bin"))
			m.stop(sig)
			if got, n := objectSHA256(t, srv, bucket, "last.bin"); got != sum {
				t.Errorf("last.bin written before %v: %d bytes sha256 %s in S3, want %s", sig, n, got, sum)
			}
		})
	}
	// A signal that arrives while the mount is being set up, even in the
	// moment after the kernel mount and before the binary is ready, must
	// not leave a mount (or a process stuck on its own mount) behind.
	t.Run("signal while mounting", func(t *testing.T) {
		t.Parallel()
		srv, bucket := startServer(t)
		for range 5 {
			m := startAmpfs(t, srv, bucket)
			deadline := time.Now().Add(mountTimeout)
			for time.Now().Before(deadline) {
				if ms, _ := mountsAt(m.dir); len(ms) > 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
			code := m.exit(10 * time.Second)
			t.Logf("SIGTERM right after the mount appeared: exit %d, log: %s", code, strings.TrimSpace(m.log()))
		}
	})
	t.Run("unmount command", func(t *testing.T) {
		t.Parallel()
		srv, bucket := startServer(t)
		m := mountAmpfs(t, srv, bucket)
		run(t, ampfsBin, "unmount", m.dir)
		if code := m.exit(10 * time.Second); code != 0 {
			t.Errorf("ampfs mount exited %d after `ampfs unmount`, want 0", code)
		}
	})
}

// TestPrefix mounts one key prefix of the bucket.
func TestPrefix(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	putObject(t, srv, bucket, "sub/in.txt", []byte("in\n"))
	putObject(t, srv, bucket, "sub/dir/deep.txt", []byte("deep\n"))
	putObject(t, srv, bucket, "other/out.txt", []byte("out\n"))
	putObject(t, srv, bucket, "top.txt", []byte("top\n"))

	m := mountAmpfs(t, srv, bucket, "--layout", "raw", "--prefix", "sub/")
	names, err := lsNames(t, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dir", "in.txt"}; !slices.Equal(names, want) {
		t.Errorf("ls of a --prefix sub/ mount: %q, want %q", names, want)
	}
	if got := run(t, "cat", m.path("dir/deep.txt")); got != "deep\n" {
		t.Errorf("cat dir/deep.txt = %q", got)
	}
	local := filepath.Join(t.TempDir(), "new")
	sum := writeRandom(t, local, 1234)
	run(t, "cp", local, m.path("new.bin"))
	if got, _ := objectSHA256(t, srv, bucket, "sub/new.bin"); got != sum {
		t.Errorf("cp new.bin into a --prefix sub/ mount: S3 sub/new.bin sha256 %s, want %s", got, sum)
	}
}

// TestUploadFailure: with the server gone, a write that cannot be uploaded
// fails fsync and close (it is never silently dropped); when the server is
// back, the same mount works again.
func TestUploadFailure(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket)
	m.expectErrors(`"level":"error"`) // what is logged while the server is down
	local := filepath.Join(t.TempDir(), "f")
	sum := writeRandom(t, local, 2<<20)
	data, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "cp", local, m.path("before.bin"))

	// Files opened and written while the server is up, flushed after it
	// stopped: the data can only be in the mount's staging area.
	synced, err := os.Create(m.path("synced.bin"))
	if err != nil {
		t.Fatal(err)
	}
	closed, err := os.Create(m.path("closed.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []*os.File{synced, closed} {
		if _, err := f.Write(data); err != nil {
			t.Fatalf("write %s: %v", f.Name(), err)
		}
	}

	srv.Stop()
	within(t, m, time.Minute, "fsync with the server down", func() {
		if err := synced.Sync(); err == nil {
			t.Errorf("fsync of synced.bin with the server down: nil error, want an error")
		} else {
			t.Logf("fsync: %v", err)
		}
	})
	within(t, m, time.Minute, "close with the server down", func() {
		if err := closed.Close(); err == nil {
			t.Errorf("close of closed.bin with the server down: nil error, want an error")
		} else {
			t.Logf("close: %v", err)
		}
	})
	synced.Close() // may fail too; the data was already refused above
	within(t, m, time.Minute, "cp with the server down", func() {
		out, err := runErr(t, "cp", local, m.path("during.bin"))
		if err == nil {
			t.Errorf("cp into the mount with the server down: exit 0, want a failure")
		} else {
			t.Logf("cp: %v: %s", err, strings.TrimSpace(out))
		}
	})

	srv.Restart()
	eventually(t, 30*time.Second, func() error {
		if out, err := runErr(t, "cp", local, m.path("after.bin")); err != nil {
			return fmt.Errorf("cp after the server restarted: %v: %s", err, out)
		}
		return nil
	})
	if got, _ := objectSHA256(t, srv, bucket, "after.bin"); got != sum {
		t.Errorf("after.bin in S3: sha256 %s, want %s", got, sum)
	}
	run(t, "cmp", local, m.path("before.bin"))
	run(t, "ls", "-l", m.dir)
}

// within runs f and fails the test if it takes longer than d; then it kills
// the mount so that f's system calls return, and waits for f.
func within(t *testing.T, m *mount, d time.Duration, what string, f func()) {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
	case <-time.After(d):
		t.Errorf("%s: still running after %v; killing the mount", what, d)
		m.abort()
		<-done
		t.FailNow()
	}
}
