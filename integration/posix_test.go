package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ampfs/ampfs/internal/testserver"
)

// makeTree writes a small tree with the metadata cp -a, rsync -a, tar and
// git care about: modes (0600, 0755, a 0700 directory), old mtimes (one
// with nanoseconds when ns), relative and absolute symlinks.
func makeTree(t *testing.T, dir string, ns bool) {
	t.Helper()
	files := []struct {
		path string
		mode os.FileMode
		data string
	}{
		{"README", 0o644, "read me\n"},
		{"bin/run.sh", 0o755, "#!/bin/sh\necho hi\n"},
		{"secret/key", 0o600, "k"},
		{"empty", 0o640, ""},
		{"deep/a/b/c.txt", 0o644, "deep\n"},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"link-rel": "bin/run.sh", "deep/up": "../README", "abs": "/etc/hostname", "dangling": "nowhere"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "secret"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Times last, deepest first, as cp -a does.
	i := 0
	var paths []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for _, p := range paths {
		i++
		tm := time.Unix(1_600_000_000+int64(i)*3600, 0)
		if ns && strings.HasSuffix(p, "README") {
			tm = tm.Add(123456789)
		}
		ts := []syscall.Timespec{syscall.NsecToTimespec(tm.UnixNano()), syscall.NsecToTimespec(tm.UnixNano())}
		if err := utimesNoFollow(p, ts); err != nil {
			t.Fatal(err)
		}
	}
}

func utimesNoFollow(p string, ts []syscall.Timespec) error {
	return utimensat(p, ts)
}

// treeState describes every entry below dir: type, permission bits, size,
// mtime (to the second unless ns) and link target. Directory mtimes are
// left out (creating entries changes them on a local disk).
func treeState(t *testing.T, dir string, ns bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		mt := fi.ModTime().Unix()
		desc := fmt.Sprintf("%v", fi.Mode())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc = "link -> " + target
		case fi.IsDir():
		default:
			desc += fmt.Sprintf(" %d bytes", fi.Size())
			if ns {
				desc += fmt.Sprintf(" mtime %d", fi.ModTime().UnixNano())
			} else {
				desc += fmt.Sprintf(" mtime %d", mt)
			}
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffStates(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if want[k] != got[k] {
			t.Errorf("%s: %s: want %q, got %q", what, k, want[k], got[k])
		}
	}
}

// cp -a into the mount keeps modes, mtimes (to the nanosecond) and links,
// also as a fresh mount sees them, and cp -a back out round-trips.
func TestCpArchiveRoundTrip(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, true)
	want := treeState(t, src, true)
	m := mountAmpfs(t, srv, bucket)
	run(t, "cp", "-a", src, m.path("tree"))
	diffStates(t, "same mount", want, treeState(t, m.path("tree"), true))
	m.stop(syscall.SIGTERM)

	m2 := mountAmpfs(t, srv, bucket)
	diffStates(t, "fresh mount", want, treeState(t, m2.path("tree"), true))
	back := filepath.Join(t.TempDir(), "back")
	run(t, "cp", "-a", m2.path("tree"), back)
	diffStates(t, "copied back", want, treeState(t, back, true))
	if st := run(t, "stat", "-c", "%a", m2.path("tree/secret")); strings.TrimSpace(st) != "700" {
		t.Errorf("directory mode %q, want 700", st)
	}
}

// rsync -a twice: the second run finds every file up to date.
func TestRsyncTwiceTransfersNothing(t *testing.T) {
	t.Parallel()
	needTool(t, "rsync", "rsync")
	srv, bucket := startServer(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, false)
	m := mountAmpfs(t, srv, bucket)
	run(t, "rsync", "-a", src+"/", m.path("r")+"/")
	out := run(t, "rsync", "-a", "--stats", src+"/", m.path("r")+"/")
	if !strings.Contains(out, "Number of regular files transferred: 0") {
		t.Errorf("second rsync -a transferred files:\n%s", out)
	}
	diffStates(t, "after rsync", treeState(t, src, false), treeState(t, m.path("r"), false))
}

// git clone into the mount, then git status is clean and git fsck passes.
func TestGitCloneStatusFsck(t *testing.T) {
	t.Parallel()
	needTool(t, "git", "git")
	srv, bucket := startServer(t)
	repo := filepath.Join(t.TempDir(), "repo")
	makeTree(t, repo, false)
	git := func(dir string, args ...string) string {
		t.Helper()
		return run(t, "git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	}
	run(t, "git", "-c", "init.defaultBranch=main", "init", "-q", repo)
	git(repo, "add", "-A")
	git(repo, "commit", "-q", "-m", "one")
	os.WriteFile(filepath.Join(repo, "README"), []byte("changed\n"), 0o644)
	git(repo, "commit", "-q", "-am", "two")
	m := mountAmpfs(t, srv, bucket)
	run(t, "git", "clone", "-q", "file://"+repo, m.path("clone"))
	if out := git(m.path("clone"), "status", "--porcelain"); strings.TrimSpace(out) != "" {
		t.Errorf("git status after clone:\n%s", out)
	}
	git(m.path("clone"), "fsck", "--full")
	if got := strings.TrimSpace(run(t, "readlink", m.path("clone/link-rel"))); got != "bin/run.sh" {
		t.Errorf("link in the clone -> %q", got)
	}
	if st := strings.TrimSpace(run(t, "stat", "-c", "%a", m.path("clone/bin/run.sh"))); st != "755" {
		t.Errorf("executable checked out as %s", st)
	}
}

// A bucket shared with s3fs: a tree cp -a'd through s3fs reads the same
// through ampfs (modes, mtimes to the second, links), and the other way.
func TestS3fsInterop(t *testing.T) {
	t.Parallel()
	needTool(t, "s3fs", "s3fs")
	srv, bucket := startServer(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, false)
	want := treeState(t, src, false)

	// ampfs writes, s3fs reads.
	m := mountAmpfs(t, srv, bucket)
	run(t, "cp", "-a", src, m.path("from-ampfs"))
	m.stop(syscall.SIGTERM)
	s := mountS3fs(t, srv, bucket)
	diffStates(t, "s3fs reading ampfs's tree", want, treeState(t, filepath.Join(s, "from-ampfs"), false))

	// s3fs writes, ampfs reads.
	run(t, "cp", "-a", src, filepath.Join(s, "from-s3fs"))
	unmountS3fs(t, s)
	m2 := mountAmpfs(t, srv, bucket)
	diffStates(t, "ampfs reading s3fs's tree", want, treeState(t, m2.path("from-s3fs"), false))
}

// needTool skips unless name is installed, installing pkg with apt-get
// when it is missing and this is root.
func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	if os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-q", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("%s is not installed and apt-get install %s failed: %v\n%s", name, pkg, err, tail(string(out), 5))
		}
		if _, err := exec.LookPath(name); err == nil {
			return
		}
	}
	t.Skipf("%s is not installed (apt-get install %s)", name, pkg)
}

// mountS3fs mounts bucket with s3fs (path-style, the test server's
// credentials, and the -o options given) and returns the mountpoint; it
// is unmounted at cleanup.
func mountS3fs(t *testing.T, srv *testserver.Server, bucket string, opts ...string) string {
	t.Helper()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "s3fs")
	os.Mkdir(dir, 0o755)
	pw := filepath.Join(tmp, "passwd")
	if err := os.WriteFile(pw, []byte(testserver.AccessKey+":"+testserver.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{bucket, dir, "-o", "url=" + srv.Endpoint, "-o", "use_path_request_style", "-o", "passwd_file=" + pw,
		"-o", "endpoint=" + testserver.Region, "-o", "stat_cache_expire=1", "-o", "enable_noobj_cache"}
	for _, o := range opts {
		args = append(args, "-o", o)
	}
	run(t, "s3fs", args...)
	deadline := time.Now().Add(mountTimeout)
	for {
		if ms, _ := mountsAt(dir); len(ms) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s3fs did not mount %s", dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { unmountS3fs(t, dir) })
	return dir
}

func unmountS3fs(t *testing.T, dir string) {
	t.Helper()
	if ms, _ := mountsAt(dir); len(ms) == 0 {
		return
	}
	if out, err := runErr(t, "umount", dir); err != nil {
		t.Errorf("umount s3fs: %v %s", err, out)
	}
	// s3fs flushes on unmount; wait for the process to let go.
	deadline := time.Now().Add(mountTimeout)
	for {
		if ms, _ := mountsAt(dir); len(ms) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("s3fs still mounted at %s", dir)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
