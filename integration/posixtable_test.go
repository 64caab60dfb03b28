package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/ampfs/ampfs/internal/testserver"
)

// TestPosixTable measures the README's table of POSIX operations: the same
// checks against ampfs, s3fs and rclone mount, each over a fresh
// versitygw bucket seen through a request-counting proxy, printed as a
// markdown table (and written to $AMPFS_POSIX_TABLE_OUT when set). It
// needs s3fs (apt-get install s3fs) and rclone (make bench-deps builds
// .bench/bin/rclone, or set AMPFS_RCLONE), so it runs only when asked:
//
//	make build bin/versitygw
//	AMPFS_POSIX_TABLE=1 AMPFS_VERSITYGW=$PWD/bin/versitygw AMPFS_BIN=$PWD/bin/ampfs \
//		go test -count=1 -run TestPosixTable -v ./integration
//
// (A -race build of ampfs works too, but is slow enough that the 1 s
// metadata TTL expires during `ls -l` of 2,500 objects: one more lookup.)
// It never fails because a file system lacks a feature: each cell says
// what happened. A file system that is not installed gets "not measured".
func TestPosixTable(t *testing.T) {
	if os.Getenv("AMPFS_POSIX_TABLE") == "" {
		t.Skip("measures s3fs and rclone mount too: AMPFS_POSIX_TABLE=1 runs it")
	}
	columns := []tableFS{ampfsColumn(), s3fsColumn(), rcloneColumn()}
	cells := make([]map[string]string, len(columns))
	for i, c := range columns {
		cells[i] = map[string]string{}
		t.Run(c.name, func(t *testing.T) {
			if c.missing != "" {
				for _, r := range tableRows {
					cells[i][r.name] = "not measured (" + c.missing + ")"
				}
				t.Skip(c.missing)
			}
			measureColumn(t, c, cells[i])
		})
	}
	var b strings.Builder
	b.WriteString("| operation |")
	for _, c := range columns {
		b.WriteString(" " + c.title + " |")
	}
	b.WriteString("\n|---|")
	for range columns {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range tableRows {
		b.WriteString("| " + r.label + " |")
		for i := range columns {
			cell := cells[i][r.name]
			if cell == "" {
				cell = "not measured (the check failed: see the test log)"
			}
			b.WriteString(" " + strings.ReplaceAll(cell, "|", `\|`) + " |")
		}
		b.WriteString("\n")
	}
	t.Logf("measured:\n%s", b.String())
	if out := os.Getenv("AMPFS_POSIX_TABLE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// tableRows are the rows of the README's table, in its order.
var tableRows = []struct{ name, label string }{
	{"attrs", "chmod / chown / touch -d"},
	{"cpa", "`cp -a` tree: modes, mtimes, links"},
	{"symlink", "symlink / readlink"},
	{"lsl", "`ls -l` of 2,500 objects"},
	{"renamefile", "rename file"},
	{"renamedir", "rename directory"},
	{"noreplace", "`RENAME_NOREPLACE`"},
	{"rsync", "`rsync -a` twice"},
	{"git", "`git clone`, `git status`, `git fsck`"},
	{"userxattr", "`user.*` xattrs"},
	{"secxattr", "`security.*`/`system.*` xattrs"},
	{"special", "hard link, mknod, fifo"},
	{"posixtest", "posixtest (go-fuse)"},
}

// tableFS is one column: how to mount a bucket with one file system.
type tableFS struct {
	name, title string
	missing     string // why it cannot be measured here, or ""
	// mount mounts bucket (reaching S3 through srv.Endpoint) and returns
	// the mountpoint and a function that unmounts it after everything
	// written is uploaded; the test's cleanup unmounts it too.
	mount func(t *testing.T, srv *testserver.Server, bucket string) (string, func())
}

func ampfsColumn() tableFS {
	return tableFS{name: "ampfs", title: "ampfs",
		mount: func(t *testing.T, srv *testserver.Server, bucket string) (string, func()) {
			m := mountAmpfs(t, srv, bucket, "--sync-on-close=false") // the default: write-back
			// What the checks provoke (EIO for an operation ampfs refuses,
			// say) is the table's business, not a test failure.
			m.expectErrors(".")
			return m.dir, func() { m.stop(syscall.SIGTERM) }
		}}
}

func s3fsColumn() tableFS {
	c := tableFS{name: "s3fs", title: "s3fs " + s3fsVersion() + " (`-o use_xattr`)"}
	if _, err := exec.LookPath("s3fs"); err != nil {
		c.missing = "s3fs is not installed: apt-get install s3fs"
	}
	c.mount = func(t *testing.T, srv *testserver.Server, bucket string) (string, func()) {
		dir := mountS3fs(t, srv, bucket, "use_xattr")
		return dir, func() { unmountS3fs(t, dir) }
	}
	return c
}

func s3fsVersion() string {
	out, err := exec.Command("s3fs", "--version").CombinedOutput()
	if m := regexp.MustCompile(`V(\d+\.\d+)`).FindSubmatch(out); err == nil && m != nil {
		return string(m[1])
	}
	return ""
}

// rcloneBin is $AMPFS_RCLONE, or the one `make bench-deps` builds.
func rcloneBin() string {
	if p := os.Getenv("AMPFS_RCLONE"); p != "" {
		return p
	}
	p, _ := filepath.Abs(filepath.Join("..", ".bench", "bin", "rclone"))
	return p
}

func rcloneColumn() tableFS {
	bin := rcloneBin()
	c := tableFS{name: "rclone", title: "rclone mount"}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		c.missing = "no rclone at " + bin + ": make bench-deps, or set AMPFS_RCLONE"
	} else if m := regexp.MustCompile(`v(\d+\.\d+)`).FindSubmatch(out); m != nil {
		c.title += " " + string(m[1]) + " (`--vfs-cache-mode writes`)"
	}
	c.mount = func(t *testing.T, srv *testserver.Server, bucket string) (string, func()) {
		return mountRclone(t, srv, bucket, bin)
	}
	return c
}

// mountRclone runs `rclone mount` in the foreground as the bench does:
// the remote from environment variables only, --vfs-cache-mode writes,
// uploads at close (--vfs-write-back 0s).
func mountRclone(t *testing.T, srv *testserver.Server, bucket, bin string) (string, func()) {
	t.Helper()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "rclone")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(tmp, "rclone.log")
	cmd := exec.Command(bin, "mount", "t:"+bucket, dir,
		"--vfs-cache-mode", "writes",
		"--cache-dir", filepath.Join(tmp, "cache"),
		"--vfs-write-back", "0s",
		"--log-level", "NOTICE",
		"--log-file", logPath,
	)
	cmd.Env = append(os.Environ(),
		"RCLONE_CONFIG="+filepath.Join(tmp, "rclone.conf.empty"),
		"RCLONE_CONFIG_T_TYPE=s3",
		"RCLONE_CONFIG_T_PROVIDER=Other",
		"RCLONE_CONFIG_T_ENDPOINT="+srv.Endpoint,
		"RCLONE_CONFIG_T_REGION="+testserver.Region,
		"RCLONE_CONFIG_T_ACCESS_KEY_ID="+testserver.AccessKey,
		"RCLONE_CONFIG_T_SECRET_ACCESS_KEY="+testserver.SecretKey,
		"RCLONE_CONFIG_T_FORCE_PATH_STYLE=true",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	done, err := testserver.StartPinned(cmd)
	if err != nil {
		t.Fatalf("starting rclone: %v", err)
	}
	exited := make(chan struct{})
	go func() { <-done; close(exited) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			// rclone unmounts itself on SIGTERM, after the uploads
			// --vfs-write-back 0s started at close.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(exitTimeout):
				t.Errorf("rclone did not exit within %v; killing it", exitTimeout)
				_ = cmd.Process.Kill()
				<-exited
			}
			if ms, _ := mountsAt(dir); len(ms) > 0 {
				t.Errorf("rclone exited but left %s mounted", dir)
				forceUnmount(dir)
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("rclone log:\n%s", tail(string(b), 16<<10))
		}
	})
	deadline := time.Now().Add(mountTimeout)
	for {
		if ms, _ := mountsAt(dir); len(ms) > 0 {
			return dir, stop
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("rclone exited before mounting:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rclone did not mount %s within %v", dir, mountTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tableRun is one column's measurement: a fresh server and bucket, seen
// through a counting proxy.
type tableRun struct {
	t      *testing.T
	c      tableFS
	srv    *testserver.Server // through the proxy
	direct *testserver.Server
	proxy  *testserver.Proxy
	bucket string
	cells  map[string]string
}

func (r *tableRun) mount() (string, func()) {
	r.t.Helper()
	return r.c.mount(r.t, r.srv, r.bucket)
}

// requests returns what the server saw while f ran, as "2 CopyObject + 1
// DeleteObject", the most frequent first.
func (r *tableRun) requests(f func()) string {
	before := r.proxy.Counts()
	f()
	time.Sleep(200 * time.Millisecond) // requests sent just after the call returned
	after := r.proxy.Counts()
	type opN struct {
		op string
		n  int
	}
	var ops []opN
	for op, n := range after {
		if d := n - before[op]; d > 0 {
			ops = append(ops, opN{op, d})
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].n != ops[j].n {
			return ops[i].n > ops[j].n
		}
		return ops[i].op < ops[j].op
	})
	var parts, lookups []string
	for _, o := range ops {
		if o.op == "HeadObject" || o.op == "ListObjectsV2" || o.op == "ListObjects" {
			lookups = append(lookups, fmt.Sprintf("%d %s", o.n, o.op))
		} else {
			parts = append(parts, fmt.Sprintf("%d %s", o.n, o.op))
		}
	}
	switch {
	case len(parts) == 0 && len(lookups) == 0:
		return "no request"
	case len(parts) == 0:
		return strings.Join(lookups, " + ")
	case len(lookups) == 0:
		return strings.Join(parts, " + ")
	}
	return strings.Join(parts, " + ") + ", and " + strings.Join(lookups, " + ")
}

func measureColumn(t *testing.T, c tableFS, cells map[string]string) {
	direct, bucket := startServer(t)
	proxy := direct.CountingProxy(t)
	r := &tableRun{t: t, c: c, srv: direct.Via(proxy.Endpoint), direct: direct, proxy: proxy, bucket: bucket, cells: cells}

	// First mount: make things, and the checks that need no remount.
	dir, unmount := r.mount()
	after := map[string]func(dir string){}
	for _, step := range []struct {
		row  string
		make func(dir string) (check func(dir string))
	}{
		{"attrs", r.attrs},
		{"cpa", r.cpArchive},
		{"symlink", r.symlink},
		{"userxattr", r.userXattrs},
		{"renamefile", r.noRemount(r.renameFile)},
		{"renamedir", r.noRemount(r.renameDir)},
		{"noreplace", r.noRemount(r.noReplace)},
		{"rsync", r.noRemount(r.rsyncTwice)},
		{"git", r.noRemount(r.git)},
		{"secxattr", r.noRemount(r.securityXattrs)},
		{"special", r.noRemount(r.special)},
	} {
		t.Run(step.row, func(t *testing.T) {
			r.t = t
			defer func() { r.t = nil }()
			if check := step.make(dir); check != nil {
				after[step.row] = check
			}
		})
	}
	r.t = t
	unmount()

	// Second mount, fresh: what persisted.
	dir, unmount = r.mount()
	for _, row := range []string{"attrs", "cpa", "symlink", "userxattr"} {
		if check := after[row]; check != nil {
			t.Run(row+"-after-remount", func(t *testing.T) {
				r.t = t
				check(dir)
			})
		}
	}
	r.t = t
	unmount()

	t.Run("lsl", func(t *testing.T) {
		r.t = t
		r.lsLarge()
	})
	t.Run("posixtest", func(t *testing.T) {
		r.t = t
		r.posixtest()
	})
}

// noRemount adapts a check that is complete in one mount.
func (r *tableRun) noRemount(f func(dir string)) func(dir string) func(string) {
	return func(dir string) func(string) { f(dir); return nil }
}

// errnoName names err's errno ("ENOTSUP"), or says what err is.
func errnoName(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		if e == unix.EOPNOTSUPP {
			return "ENOTSUP"
		}
		return unix.ErrnoName(e)
	}
	return err.Error()
}

// strerrorNames maps the messages of coreutils and friends to errno
// names, for cells about commands that failed.
var strerrorNames = map[string]string{
	"Operation not supported":   "ENOTSUP",
	"Operation not permitted":   "EPERM",
	"Function not implemented":  "ENOSYS",
	"Input/output error":        "EIO",
	"Invalid argument":          "EINVAL",
	"File exists":               "EEXIST",
	"Permission denied":         "EACCES",
	"No such file or directory": "ENOENT",
	"Argument list too long":    "E2BIG",
	"No data available":         "ENODATA",
	"Directory not empty":       "ENOTEMPTY",
	"Is a directory":            "EISDIR",
}

// failure describes a command that failed: its errno when the message
// names one, else its first line.
func failure(out string) string {
	for msg, name := range strerrorNames {
		if strings.Contains(out, msg) {
			return name
		}
	}
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(line)
}

// stored returns the object's user metadata names ("mode", "mtime"),
// sorted, or nil when the object does not exist.
func (r *tableRun) stored(key string) []string {
	out, err := r.direct.Client().HeadObject(s3ctx(r.t), &s3.HeadObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key)})
	if err != nil {
		return nil
	}
	var names []string
	for k := range out.Metadata {
		names = append(names, strings.ToLower(k))
	}
	sort.Strings(names)
	return names
}

func (r *tableRun) set(row, cell string) {
	r.cells[row] = cell
	r.t.Logf("%s: %s", row, cell)
}

// attrs: chmod, chown and touch -d of a file and a directory, read back
// after a remount.
func (r *tableRun) attrs(dir string) func(string) {
	t := r.t
	p, d := filepath.Join(dir, "attrs-file"), filepath.Join(dir, "attrs-dir")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, c := range [][]string{
		{"chmod", "0640", p}, {"chown", "1234:5678", p}, {"touch", "-d", "2021-02-03 04:05:06.123456789 UTC", p},
		{"chmod", "0701", d}, {"chown", "1234:5678", d}, {"touch", "-d", "2021-02-03 04:05:06 UTC", d},
	} {
		if out, err := runErr(t, c[0], c[1:]...); err != nil {
			failed = append(failed, c[0]+" "+filepath.Base(c[len(c)-1])+": "+failure(out))
		}
	}
	want := time.Date(2021, 2, 3, 4, 5, 6, 123456789, time.UTC)
	return func(dir string) {
		var lost []string
		for _, x := range []struct {
			name, mode string
			mtime      time.Time
		}{
			{"attrs-file", "640", want},
			{"attrs-dir", "701", want.Truncate(time.Second)},
		} {
			var st syscall.Stat_t
			kind := "file"
			if x.name == "attrs-dir" {
				kind = "dir"
			}
			if err := syscall.Stat(filepath.Join(dir, x.name), &st); err != nil {
				if errors.Is(err, syscall.ENOENT) && kind == "dir" {
					lost = append(lost, "the empty dir is gone")
				} else {
					lost = append(lost, kind+": "+errnoName(err))
				}
				continue
			}
			if got := fmt.Sprintf("%o", st.Mode&0o7777); got != x.mode {
				lost = append(lost, fmt.Sprintf("%s mode %s, not %s", kind, got, x.mode))
			}
			if st.Uid != 1234 || st.Gid != 5678 {
				lost = append(lost, fmt.Sprintf("%s owner %d:%d, not 1234:5678", kind, st.Uid, st.Gid))
			}
			mt := time.Unix(st.Mtim.Unix())
			switch {
			case mt.Equal(x.mtime):
			case mt.Unix() == x.mtime.Unix():
				lost = append(lost, kind+" mtime to the second")
			default:
				lost = append(lost, kind+" mtime "+mt.UTC().Format(time.DateTime)+", not 2021-02-03")
			}
		}
		cell := "persisted"
		switch {
		case len(lost) > 0:
			cell = "after a remount: " + strings.Join(append(failed, lost...), "; ")
		case len(failed) > 0:
			cell = strings.Join(failed, "; ")
		}
		if md := r.stored("attrs-file"); len(md) > 0 {
			cell += " (object metadata: " + strings.Join(md, ", ") + ")"
		} else {
			cell += " (no object metadata)"
		}
		r.set("attrs", cell)
	}
}

// cpArchive: cp -a of a tree in, and after a remount cp -a back out.
func (r *tableRun) cpArchive(dir string) func(string) {
	t := r.t
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, true)
	want := treeState(t, src, true)
	var errs []string
	if out, err := runErr(t, "cp", "-a", src, filepath.Join(dir, "cpa")); err != nil {
		errs = append(errs, "cp -a in: "+failure(out))
	}
	return func(dir string) {
		back := filepath.Join(r.t.TempDir(), "back")
		if out, err := runErr(r.t, "cp", "-a", filepath.Join(dir, "cpa"), back); err != nil {
			errs = append(errs, "cp -a out: "+failure(out))
		}
		cell := compareTrees(want, treeStateLenient(back))
		if len(errs) > 0 {
			cell = strings.Join(errs, "; ") + "; " + cell
		}
		r.set("cpa", cell)
	}
}

// treeStateLenient is treeState that records unreadable entries instead
// of failing.
func treeStateLenient(dir string) map[string]string {
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return nil
		}
		desc := fmt.Sprintf("%v", fi.Mode())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc = "link -> " + target
		case fi.IsDir():
		default:
			desc += fmt.Sprintf(" %d bytes mtime %d", fi.Size(), fi.ModTime().UnixNano())
		}
		out[rel] = desc
		return nil
	})
	return out
}

// compareTrees summarizes how got differs from want (treeState with
// nanoseconds): entries missing, links, modes, sizes and mtimes.
func compareTrees(want, got map[string]string) string {
	var missing, links, modes, sizes, mtimes, mtimesSec int
	re := regexp.MustCompile(`^(\S+) (\d+) bytes mtime (\d+)$`)
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			missing++
		case strings.HasPrefix(w, "link"):
			if g != w {
				links++
			}
		case re.MatchString(w):
			wm, gm := re.FindStringSubmatch(w), re.FindStringSubmatch(g)
			if gm == nil {
				modes++
				continue
			}
			if wm[1] != gm[1] {
				modes++
			}
			if wm[2] != gm[2] {
				sizes++
			}
			if wm[3] != gm[3] {
				var wn, gn int64
				fmt.Sscan(wm[3], &wn)
				fmt.Sscan(gm[3], &gn)
				if wn/1e9 == gn/1e9 {
					mtimesSec++
				} else {
					mtimes++
				}
			}
		default: // a directory
			if g != w {
				modes++
			}
		}
	}
	var diffs []string
	for _, d := range []struct {
		n    int
		what string
	}{
		{missing, "missing"}, {links, "symlinks lost or changed"}, {modes, "modes changed"},
		{sizes, "sizes changed"}, {mtimes, "mtimes changed"},
	} {
		if d.n > 0 {
			diffs = append(diffs, fmt.Sprintf("%d of %d entries %s", d.n, len(want), d.what))
		}
	}
	switch {
	case len(diffs) == 0 && mtimesSec == 0:
		return "round-trips, mtime to the ns"
	case len(diffs) == 0:
		return "round-trips, mtime to the second"
	case mtimesSec > 0 && mtimes == 0:
		diffs = append(diffs, "mtimes to the second")
	}
	return strings.Join(diffs, "; ")
}

// symlink: ln -s, readlink in the same mount and after a remount, and
// what the object is.
func (r *tableRun) symlink(dir string) func(string) {
	const target = "some/target"
	if err := os.Symlink(target, filepath.Join(dir, "link")); err != nil {
		r.set("symlink", "symlink: "+errnoName(err))
		return nil
	}
	same, err := os.Readlink(filepath.Join(dir, "link"))
	if err != nil || same != target {
		r.set("symlink", fmt.Sprintf("readlink: %q, %v", same, err))
		return nil
	}
	return func(dir string) {
		got, err := os.Readlink(filepath.Join(dir, "link"))
		switch {
		case err != nil:
			r.set("symlink", "works; after remount readlink: "+errnoName(err))
			return
		case got != target:
			r.set("symlink", fmt.Sprintf("works; after remount %q", got))
			return
		}
		var how string
		keys := listKeys(r.t, r.direct, r.bucket, "link")
		body := ""
		if len(keys) == 1 {
			out, err := r.direct.Client().GetObject(s3ctx(r.t), &s3.GetObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(keys[0])})
			if err == nil {
				b, _ := io.ReadAll(out.Body)
				out.Body.Close()
				body = string(b)
			}
			h := headObject(r.t, r.direct, r.bucket, keys[0])
			mode := ""
			if h != nil {
				mode = h.Metadata["mode"]
			}
			var m uint32
			fmt.Sscan(mode, &m)
			switch {
			case keys[0] == "link" && body == target && m&syscall.S_IFMT == syscall.S_IFLNK:
				how = "s3fs format (body is the target, x-amz-meta-mode S_IFLNK)"
			default:
				how = fmt.Sprintf("object %q holding %q", keys[0], body)
			}
		} else {
			how = fmt.Sprintf("objects %q", keys)
		}
		r.set("symlink", "works, persisted: "+how)
	}
}

// userXattrs: setfattr user.*, a small value and one of 4 KiB, read back
// after a remount.
func (r *tableRun) userXattrs(dir string) func(string) {
	p := filepath.Join(dir, "xattr-file")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.test", []byte("value"), 0); err != nil {
		r.set("userxattr", "set: "+errnoName(err))
		return nil
	}
	big := ""
	if err := unix.Setxattr(p, "user.big", []byte(strings.Repeat("v", 4096)), 0); err != nil {
		big = ", a 4 KiB value: " + errnoName(err)
	} else {
		big = ", a 4 KiB value is accepted"
	}
	return func(dir string) {
		buf := make([]byte, 64)
		n, err := unix.Getxattr(filepath.Join(dir, "xattr-file"), "user.test", buf)
		cell := ""
		switch {
		case err != nil:
			cell = "set works, after remount get: " + errnoName(err)
		case string(buf[:n]) != "value":
			cell = fmt.Sprintf("after remount %q", buf[:n])
		default:
			cell = "persisted"
		}
		md := r.stored("xattr-file")
		if names := strings.Join(md, ", "); names != "" {
			cell += " (object metadata: " + names + ")"
		}
		r.set("userxattr", cell+big)
	}
}

// renameFile: mv of a file within a directory and into another, and the
// requests it costs.
func (r *tableRun) renameFile(dir string) {
	src, dst := filepath.Join(dir, "rf-a"), filepath.Join(dir, "rf-b")
	if err := os.WriteFile(src, []byte("contents"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	settle(dir)
	var err error
	cost := r.requests(func() { err = os.Rename(src, dst) })
	if err != nil {
		r.set("renamefile", "rename: "+errnoName(err))
		return
	}
	got, err := os.ReadFile(dst)
	if err != nil || string(got) != "contents" {
		r.set("renamefile", fmt.Sprintf("renamed file reads %q, %v", got, err))
		return
	}
	r.set("renamefile", "works: "+cost)
}

// settle waits for uploads a close started in the background (s3fs and
// ampfs upload at close; rclone and ampfs's write-back soon after) so a
// request count covers only what follows.
func settle(dir string) {
	unix.Sync()
	time.Sleep(1500 * time.Millisecond)
}

// renameDir: mv of a directory with 3 files and a subdirectory.
func (r *tableRun) renameDir(dir string) {
	src, dst := filepath.Join(dir, "rd-a"), filepath.Join(dir, "rd-b")
	for _, p := range []string{"f1", "f2", "sub/f3"} {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	settle(dir)
	var err error
	cost := r.requests(func() { err = os.Rename(src, dst) })
	if err != nil {
		r.set("renamedir", "rename: "+errnoName(err))
		return
	}
	for _, p := range []string{"f1", "f2", "sub/f3"} {
		if got, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(got) != p {
			r.set("renamedir", fmt.Sprintf("after the rename %s reads %q, %v", p, got, err))
			return
		}
	}
	settle(dir)
	left := listKeys(r.t, r.direct, r.bucket, "rd-a/")
	cell := "works (3 files, 1 subdirectory): " + cost
	if len(left) > 0 {
		cell += fmt.Sprintf("; left on the server under the old name: %q", left)
	}
	r.set("renamedir", cell)
}

// noReplace: renameat2 RENAME_NOREPLACE onto an existing file and onto a
// new name.
func (r *tableRun) noReplace(dir string) {
	a, b, c := filepath.Join(dir, "nr-a"), filepath.Join(dir, "nr-b"), filepath.Join(dir, "nr-c")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte(filepath.Base(p)), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	settle(dir)
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE)
	onto := "onto an existing file: "
	switch got, _ := os.ReadFile(b); {
	case err == nil:
		onto += fmt.Sprintf("succeeded, the target now reads %q", got)
	case errors.Is(err, syscall.EEXIST) && string(got) == "nr-b":
		onto += "EEXIST"
	default:
		onto += errnoName(err)
	}
	err = unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, c, unix.RENAME_NOREPLACE)
	if errors.Is(err, syscall.EINVAL) {
		// The kernel's answer when the file system does not take the
		// flag (FUSE_RENAME2 unsupported); EEXIST onto a name it has
		// cached is the kernel's own check.
		r.set("noreplace", "EINVAL: not supported (the kernel answers EEXIST itself onto a name it has cached)")
		return
	}
	fresh := "; to a new name: works"
	if err != nil {
		fresh = "; to a new name: " + errnoName(err)
	}
	r.set("noreplace", onto+fresh)
}

// rsyncTwice: rsync -a a tree in twice; the second run should find
// everything up to date.
func (r *tableRun) rsyncTwice(dir string) {
	src := filepath.Join(r.t.TempDir(), "src")
	makeTree(r.t, src, false)
	dst := filepath.Join(dir, "rsync") + "/"
	note := ""
	args := []string{"-a"}
	if out, err := runErr(r.t, "rsync", "-a", src+"/", dst); err != nil {
		// Try once more without what failed, to see the second run.
		note = "first run: " + failure(out)
		if strings.Contains(out, "symlink") {
			note = "symlinks: " + failure(out)
			args = append(args, "--no-links")
			if out, err := runErr(r.t, "rsync", append(args, src+"/", dst)...); err != nil {
				r.set("rsync", note+"; with --no-links: "+failure(out))
				return
			}
			note += "; with --no-links the"
		} else {
			r.set("rsync", note)
			return
		}
	}
	settle(dir)
	out, err := runErr(r.t, "rsync", append(args, "--stats", src+"/", dst)...)
	if err != nil {
		r.set("rsync", note+" second run: "+failure(out))
		return
	}
	m := regexp.MustCompile(`Number of regular files transferred: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		r.set("rsync", "second run: no stats")
		return
	}
	total := regexp.MustCompile(`Number of regular files: (\d+)`).FindStringSubmatch(out)
	of := ""
	if total != nil {
		of = " of " + total[1]
	}
	if note == "" {
		note = "the"
	}
	r.set("rsync", note+" second run transfers "+m[1]+of+" files")
}

// git: clone a small repository into the mount, then status and fsck.
func (r *tableRun) git(dir string) {
	t := r.t
	repo := filepath.Join(t.TempDir(), "repo")
	makeTree(t, repo, false)
	git := func(d string, args ...string) (string, error) {
		return runErr(t, "git", append([]string{"-C", d, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-q", "-m", "one"}} {
		if out, err := git(repo, args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	clone := filepath.Join(dir, "clone")
	if out, err := runErr(t, "git", "clone", "-q", "file://"+repo, clone); err != nil {
		r.set("git", "git clone: "+failure(out))
		return
	}
	out, err := git(clone, "status", "--porcelain")
	switch {
	case err != nil:
		r.set("git", "git status: "+failure(out))
		return
	case strings.TrimSpace(out) != "":
		n := len(strings.Split(strings.TrimSpace(out), "\n"))
		out2, err := git(clone, "fsck", "--full")
		fsck := "passes"
		if err != nil {
			fsck = failure(out2)
		}
		r.set("git", fmt.Sprintf("clone works; status shows %d changed paths; fsck %s", n, fsck))
		return
	}
	if out, err := git(clone, "fsck", "--full"); err != nil {
		r.set("git", "clean; git fsck: "+failure(out))
		return
	}
	cell := "clean, passes"
	if out, _ := git(clone, "config", "core.symlinks"); strings.TrimSpace(out) == "false" {
		cell += " (git found symlinks unsupported: checks links out as plain files)"
	}
	r.set("git", cell)
}

// securityXattrs: setxattr of security.* and system.posix_acl_access,
// getxattr of security.selinux.
func (r *tableRun) securityXattrs(dir string) {
	p := filepath.Join(dir, "sec-file")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	res := func(err error) string {
		if err == nil {
			return "works"
		}
		return errnoName(err)
	}
	set := res(unix.Setxattr(p, "security.test", []byte("v"), 0))
	acl := res(unix.Setxattr(p, "system.posix_acl_access", posixACL0644, 0))
	_, err := unix.Getxattr(p, "security.selinux", make([]byte, 256))
	r.set("secxattr", fmt.Sprintf("set security.*: %s, set system.posix_acl_access: %s, get security.selinux: %s", set, acl, res(err)))
}

// posixACL0644 is the system.posix_acl_access value of mode 0644: version
// 2, then user::rw-, group::r--, other::r--.
var posixACL0644 = []byte{
	2, 0, 0, 0,
	1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
	4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
	0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
}

// special: link(2), mkfifo(3) and mknod(2) of a character device.
func (r *tableRun) special(dir string) {
	p := filepath.Join(dir, "special-target")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	res := func(err error) string {
		if err == nil {
			return "works"
		}
		return errnoName(err)
	}
	link := res(unix.Link(p, filepath.Join(dir, "special-link")))
	fifo := res(unix.Mkfifo(filepath.Join(dir, "special-fifo"), 0o644))
	dev := res(unix.Mknod(filepath.Join(dir, "special-dev"), syscall.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
	r.set("special", fmt.Sprintf("link: %s, mkfifo: %s, mknod: %s", link, fifo, dev))
}

// lsLarge: ls -l of a directory of 2,500 objects put on the server
// directly, by a fresh mount; the requests it costs.
func (r *tableRun) lsLarge() {
	const n = 2500
	client := r.direct.Client()
	keys := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var putErr error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				_, err := client.PutObject(context.Background(), &s3.PutObjectInput{
					Bucket: aws.String(r.bucket), Key: aws.String(k), Body: strings.NewReader("x")})
				if err != nil {
					mu.Lock()
					putErr = err
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		keys <- fmt.Sprintf("large/f%04d", i)
	}
	close(keys)
	wg.Wait()
	if putErr != nil {
		r.t.Fatal(putErr)
	}
	dir, unmount := r.mount()
	defer unmount()
	var out string
	var err error
	var took time.Duration
	cost := r.requests(func() {
		start := time.Now()
		out, err = runErr(r.t, "ls", "-l", filepath.Join(dir, "large"))
		took = time.Since(start).Round(10 * time.Millisecond)
	})
	if err != nil {
		r.set("lsl", "ls -l: "+failure(out))
		return
	}
	if lines := strings.Count(out, "\n"); lines != n+1 {
		r.set("lsl", fmt.Sprintf("%s, but %d lines", cost, lines))
		return
	}
	r.set("lsl", fmt.Sprintf("%s (%v)", cost, took))
}

// posixtest: go-fuse's suite against a fresh mount, in a child process
// (this test binary, TestPosixtestDir), so that its failures are counted
// rather than failing this test. OpenSymlinkRace is left out: its 1000
// rounds take minutes against S3.
func (r *tableRun) posixtest() {
	dir, unmount := r.mount()
	defer unmount()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestPosixtestDir$", "-test.v", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), "AMPFS_POSIXTEST_DIR="+dir, "AMPFS_BIN="+ampfsBin)
	cmd.Dir = "/"
	out, _ := cmd.CombinedOutput()
	counts := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	re := regexp.MustCompile(`^\s+--- (PASS|FAIL|SKIP): TestPosixtestDir/(\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil && m[2] != "OpenSymlinkRace" {
			counts[m[1]] = append(counts[m[1]], m[2])
		}
	}
	total := len(counts["PASS"]) + len(counts["FAIL"]) + len(counts["SKIP"])
	if total == 0 {
		r.t.Logf("posixtest output:\n%s", tail(string(out), 16<<10))
		r.set("posixtest", "did not run: see the test log")
		return
	}
	r.t.Logf("posixtest: failed %v; skipped itself %v", counts["FAIL"], counts["SKIP"])
	cell := fmt.Sprintf("%d of %d pass", len(counts["PASS"]), total)
	if f := counts["FAIL"]; len(f) > 0 {
		cell += "; fail: " + strings.Join(f, ", ")
	}
	if s := counts["SKIP"]; len(s) > 0 {
		cell += "; skip themselves: " + strings.Join(s, ", ")
	}
	r.set("posixtest", cell)
}

// TestPosixtestDir runs posixtest.All (but OpenSymlinkRace) in
// $AMPFS_POSIXTEST_DIR, any mounted file system; TestPosixTable runs it
// in a child process.
func TestPosixtestDir(t *testing.T) {
	dir := os.Getenv("AMPFS_POSIXTEST_DIR")
	if dir == "" {
		t.Skip("TestPosixTable runs it with AMPFS_POSIXTEST_DIR")
	}
	runPosixtest(t, dir, func(t *testing.T, name string) {
		if name == "OpenSymlinkRace" {
			t.SkipNow()
		}
	}, nil)
}
