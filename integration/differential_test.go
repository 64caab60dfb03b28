package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDifferential applies one random sequence of file operations to a
// local directory (the reference: the real local file system) and to the
// same relative paths in an ampfs mount, and after every step requires
// the same outcome (success, or the same errno) and the same tree: paths,
// types, contents, permission bits, owners, symlink targets and mtimes.
// At the end it mounts the bucket again with a fresh cache directory and
// compares once more, so what was compared went through S3, not only
// through the kernel's and the mount's caches.
//
// Names come from a small pool, so operations collide: ENOENT, EEXIST,
// ENOTEMPTY, ENOTDIR and EISDIR are frequent outcomes, and they must be
// the same on both sides.
//
// Seeds: diffSeeds below, one subtest each, and diffWriteBackSeeds in
// write-back mode; or AMPFS_DIFF_SEEDS="1,2,3" instead; steps per seed:
// diffSteps, or AMPFS_DIFF_STEPS. AMPFS_DIFF_FLAGS adds mount flags to
// the seeds of diffSeeds or AMPFS_DIFF_SEEDS (e.g. "--sync-on-close=false"). A failure
// prints the seed, the step, every operation so far and the difference;
// the same seed replays the same operations (they are chosen from the
// reference tree only, never from what the mount answered).
//
// What is not compared, and why (everything else is, exactly):
//
//   - atime and ctime: ampfs shows the mtime for both (S3 keeps neither).
//   - A directory's size, link count and mtime: a local directory's mtime
//     changes with every entry made or removed in it, ampfs's is what its
//     marker object stores (mkdir's time, or utimes') and changing an
//     entry does not rewrite the marker; sizes and link counts are
//     made up (4096, 1) as on most network file systems. A directory's
//     mtime is compared right after a utimes of it, and between the
//     first mount and the fresh one at the end (it must persist).
//   - A file's block count: sparse files take blocks locally, ampfs
//     reports size/512.
//   - The mount's root directory: its mode and times are the mount's
//     (the bucket root has no marker to keep them), so chmod and utimes
//     of it succeed without a lasting effect. The sequence reaches it
//     through symlinks to ".".
//   - The exact mtime a write, truncate, create or touch sets: each side
//     takes "now" from its own clock (the local kernel's coarse clock,
//     ampfs's time.Now). It is checked instead that ampfs's mtime changed
//     in the step in which the local one did and lies within that step's
//     time window; an mtime set by utimes must be equal to the ns, and the
//     fresh mount must show to the ns what the first one showed
//     (x-amz-meta-mtime keeps nanoseconds).
//   - Operations the sequence never makes: hard links (ampfs: ENOTSUP),
//     mknod/fifos (EPERM), RENAME_EXCHANGE (EINVAL), chown (one owner per
//     mount; the test runs as root, so both sides show root), and setgid
//     on directories (Linux gives a setgid directory's new entries its
//     group and new subdirectories the bit; ampfs does not propagate it).
//   - The type readdir reports on the fresh mount: until a symlink the
//     mount did not write itself is stat'ed, getdents calls it a regular
//     file (fs/doc.go, "Metadata without a HEAD per entry"). On the first
//     mount readdir's types must be lstat's.
//   - Symlink targets never contain "..", so that following them never
//     leaves the tree (the reference's and the mount's parents differ).
func TestDifferential(t *testing.T) {
	t.Parallel()
	seeds, steps := diffConfig(t)
	var extra []string
	if v := os.Getenv("AMPFS_DIFF_FLAGS"); v != "" {
		extra = strings.Fields(v)
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runDifferential(t, seed, steps, extra)
		})
	}
	if os.Getenv("AMPFS_DIFF_SEEDS") != "" {
		return
	}
	for _, seed := range diffWriteBackSeeds {
		t.Run(fmt.Sprintf("write-back/seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runDifferential(t, seed, steps, []string{"--sync-on-close=false"})
		})
	}
}

// diffSeeds run in every `make test`. A seed that once found a bug stays
// here with a comment naming it.
var diffSeeds = []uint64{
	// Renaming a directory made by mkdir failed with EINVAL on versitygw
	// (CopyObject of a marker); chmod 000 showed 0644 (go-fuse's
	// NullPermissions); a lookup answered by a cached listing took a
	// file back to the version before the mount's own write or chmod
	// (old size, ESTALE on read); after a directory rename getdents
	// called a moved symlink a regular file.
	1,
	2,
	// utimes through a symlink to "." reaches the root (a test bug: the
	// root's times are not compared).
	3,
	// A directory rename deleted a marker in parallel with the last file
	// below it, and versitygw kept the old directory; a renamed symlink
	// was a regular file in later listings.
	4,
	// close with --sync-on-close returned before the upload's completion
	// reached the file, whose last close then dropped its staging file:
	// stat showed the size before an append (a race: about 1 run in 4).
	7,
}

// diffWriteBackSeeds also run in every `make test`, mounted with
// --sync-on-close=false (close returns before the upload), which no other
// integration test drives this way.
var diffWriteBackSeeds = []uint64{
	// A chmod folded into an upload still running was lost when the
	// upload finished before the commit, and the commit used the staging
	// file while the upload's completion closed it (a data race; found at
	// 400 steps). A file renamed over one whose upload was in flight was
	// deleted from the server by that canceled upload (ENOENT at step
	// 97). Both races; the fs tests TestChmodDuringUploadReachesServer
	// and TestRenameOverFileUploading pin them down.
	44,
	// A file renamed while its upload was in flight showed size 0
	// (TestRenameWhileUploadingKeepsData), and a file just created showed
	// mode 0644 and a zero mtime after a readdir: a node made anew from a
	// listing entry of a name whose upload is pending
	// (TestPendingFileShowsItsModeAndMtime).
	78,
}

// diffSteps is the number of operations per seed in `make test`.
const diffSteps = 200

// diffConfig reads AMPFS_DIFF_SEEDS and AMPFS_DIFF_STEPS.
func diffConfig(t *testing.T) ([]uint64, int) {
	seeds, steps := diffSeeds, diffSteps
	if v := os.Getenv("AMPFS_DIFF_SEEDS"); v != "" {
		seeds = nil
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			s, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				t.Fatalf("AMPFS_DIFF_SEEDS: %q: %v", f, err)
			}
			seeds = append(seeds, s)
		}
	}
	if v := os.Getenv("AMPFS_DIFF_STEPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("AMPFS_DIFF_STEPS: %q: want a positive number", v)
		}
		steps = n
	}
	return seeds, steps
}

// namePool is every name the sequence uses. "a-b" and "a.b" sort between
// "a" and "a/" (S3 lists in byte order), the others test key encoding.
var namePool = []string{"a", "a-b", "a.b", "b", "c", "x y", "ü"}

// diffOp is one step of the sequence; its fields mean what kind says.
type diffOp struct {
	kind   string
	path   string // the file or directory operated on
	dst    string // rename's destination; symlink's target
	off    int64  // write offset; truncate size; read offset
	n      int    // bytes written
	off2   int64  // second write (write-rename-write)
	n2     int
	pat    uint64 // seed of the bytes written
	mode   uint32
	flag   int       // open flags, rename flags
	sync   bool      // fsync before close
	mtime  time.Time // utimes
	atime  time.Time
	create bool // write: O_CREAT
}

func (o diffOp) String() string {
	switch o.kind {
	case "create":
		return fmt.Sprintf("create %q mode=%#o excl=%v len=%d pat=%d", o.path, o.mode, o.flag&unix.O_EXCL != 0, o.n, o.pat)
	case "write":
		how := "pwrite"
		if o.flag&unix.O_APPEND != 0 {
			how = "append"
		}
		return fmt.Sprintf("write %q %s off=%d len=%d pat=%d rdwr=%v creat=%v fsync=%v", o.path, how, o.off, o.n, o.pat, o.flag&unix.O_ACCMODE == unix.O_RDWR, o.create, o.sync)
	case "truncate", "ftruncate":
		return fmt.Sprintf("%s %q size=%d", o.kind, o.path, o.off)
	case "rename":
		nr := ""
		if o.flag&unix.RENAME_NOREPLACE != 0 {
			nr = " NOREPLACE"
		}
		return fmt.Sprintf("rename %q -> %q%s", o.path, o.dst, nr)
	case "mkdir":
		return fmt.Sprintf("mkdir %q mode=%#o", o.path, o.mode)
	case "chmod":
		return fmt.Sprintf("chmod %q %#o", o.path, o.mode)
	case "utimes", "lutimes":
		return fmt.Sprintf("%s %q mtime=%d.%09d atime=%d.%09d", o.kind, o.path, o.mtime.Unix(), o.mtime.Nanosecond(), o.atime.Unix(), o.atime.Nanosecond())
	case "symlink":
		return fmt.Sprintf("symlink %q -> %q", o.path, o.dst)
	case "read":
		return fmt.Sprintf("read %q off=%d", o.path, o.off)
	case "wrw":
		return fmt.Sprintf("write-rename-write %q (off=%d len=%d) -> %q (off=%d len=%d) pat=%d", o.path, o.off, o.n, o.dst, o.off2, o.n2, o.pat)
	case "unlinkopen":
		return fmt.Sprintf("unlink-while-open %q len=%d pat=%d", o.path, o.n, o.pat)
	}
	return fmt.Sprintf("%s %q", o.kind, o.path)
}

// pattern returns n deterministic bytes for seed.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// retry repeats a system call interrupted by a signal, as package os does.
func retry(f func() error) error {
	for {
		if err := f(); !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// errName is what a step's outcome is compared by: OK or the errno's name.
func errName(err error) string {
	if err == nil {
		return "OK"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
		return fmt.Sprintf("errno %d", int(errno))
	}
	return "error " + err.Error()
}

// outcome records each system call of an operation, in order, and stops
// at the first that fails.
type outcome struct {
	parts []string
	err   bool
}

func (oc *outcome) call(name string, err error) bool {
	oc.parts = append(oc.parts, name+"="+errName(err))
	if err != nil {
		oc.err = true
	}
	return err == nil
}

func (oc *outcome) note(s string) { oc.parts = append(oc.parts, s) }

func (oc *outcome) String() string { return strings.Join(oc.parts, " ") }

func shaOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// apply runs op below root and describes what happened.
func (o diffOp) apply(root string) string {
	p := filepath.Join(root, o.path)
	oc := &outcome{}
	openFile := func(path string, flags int, mode uint32) (int, bool) {
		var fd int
		err := retry(func() (err error) {
			fd, err = unix.Open(path, flags|unix.O_CLOEXEC, mode)
			return err
		})
		return fd, oc.call("open", err)
	}
	pwrite := func(fd int, data []byte, off int64, appendMode bool) bool {
		var n int
		err := retry(func() (err error) {
			if appendMode {
				n, err = unix.Write(fd, data)
			} else {
				n, err = unix.Pwrite(fd, data, off)
			}
			return err
		})
		if err == nil && n != len(data) {
			oc.note(fmt.Sprintf("short-write=%d", n))
		}
		return oc.call("write", err)
	}
	closeFile := func(fd int) { oc.call("close", retry(func() error { return unix.Close(fd) })) }
	switch o.kind {
	case "create":
		fd, ok := openFile(p, unix.O_CREAT|unix.O_WRONLY|o.flag, o.mode)
		if !ok {
			break
		}
		if o.n > 0 {
			pwrite(fd, pattern(o.pat, o.n), 0, false)
		}
		closeFile(fd)
	case "write":
		flags := o.flag
		if o.create {
			flags |= unix.O_CREAT
		}
		fd, ok := openFile(p, flags, 0o644)
		if !ok {
			break
		}
		data := pattern(o.pat, o.n)
		if pwrite(fd, data, o.off, o.flag&unix.O_APPEND != 0) && o.flag&unix.O_ACCMODE == unix.O_RDWR && o.flag&unix.O_APPEND == 0 {
			// Read-your-writes through the same descriptor, before close.
			back := make([]byte, len(data))
			var n int
			err := retry(func() (err error) { n, err = unix.Pread(fd, back, o.off); return err })
			if oc.call("pread", err) {
				oc.note(fmt.Sprintf("read-back-ok=%v", n == len(data) && string(back[:n]) == string(data)))
			}
		}
		if o.sync {
			oc.call("fsync", retry(func() error { return unix.Fsync(fd) }))
		}
		closeFile(fd)
	case "truncate":
		oc.call("truncate", retry(func() error { return unix.Truncate(p, o.off) }))
	case "ftruncate":
		fd, ok := openFile(p, unix.O_WRONLY, 0)
		if !ok {
			break
		}
		oc.call("ftruncate", retry(func() error { return unix.Ftruncate(fd, o.off) }))
		closeFile(fd)
	case "rename":
		q := filepath.Join(root, o.dst)
		oc.call("rename", retry(func() error { return unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, q, uint(o.flag)) }))
	case "mkdir":
		oc.call("mkdir", retry(func() error { return unix.Mkdir(p, o.mode) }))
	case "rmdir":
		oc.call("rmdir", retry(func() error { return unix.Rmdir(p) }))
	case "unlink":
		oc.call("unlink", retry(func() error { return unix.Unlink(p) }))
	case "chmod":
		oc.call("chmod", retry(func() error { return unix.Chmod(p, o.mode) }))
	case "utimes":
		// os.Chtimes follows symlinks, as utimes(2) does.
		oc.call("utimes", os.Chtimes(p, o.atime, o.mtime))
	case "lutimes":
		ts := []unix.Timespec{unix.NsecToTimespec(o.atime.UnixNano()), unix.NsecToTimespec(o.mtime.UnixNano())}
		oc.call("lutimes", retry(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW) }))
	case "touch":
		oc.call("touch", retry(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, p, nil, 0) }))
	case "symlink":
		oc.call("symlink", retry(func() error { return unix.Symlink(o.dst, p) }))
	case "read":
		fd, ok := openFile(p, unix.O_RDONLY, 0)
		if !ok {
			break
		}
		var data []byte
		buf := make([]byte, 64<<10)
		off := o.off
		for {
			var n int
			err := retry(func() (err error) { n, err = unix.Pread(fd, buf, off); return err })
			if !oc.call("pread", err) || n == 0 {
				break
			}
			oc.parts = oc.parts[:len(oc.parts)-1] // one pread= entry is enough
			data = append(data, buf[:n]...)
			off += int64(n)
		}
		oc.note(fmt.Sprintf("got=%d bytes sha=%s", len(data), shaOf(data)))
		closeFile(fd)
	case "wrw":
		fd, ok := openFile(p, unix.O_WRONLY|unix.O_CREAT, 0o644)
		if !ok {
			break
		}
		if pwrite(fd, pattern(o.pat, o.n), o.off, false) {
			q := filepath.Join(root, o.dst)
			if oc.call("rename", retry(func() error { return unix.Rename(p, q) })) {
				pwrite(fd, pattern(o.pat+1, o.n2), o.off2, false)
			}
		}
		closeFile(fd)
	case "unlinkopen":
		fd, ok := openFile(p, unix.O_RDWR|unix.O_CREAT, 0o644)
		if !ok {
			break
		}
		if pwrite(fd, pattern(o.pat, o.n), 0, false) &&
			oc.call("unlink", retry(func() error { return unix.Unlink(p) })) {
			pwrite(fd, pattern(o.pat+1, o.n), int64(o.n), false)
			back := make([]byte, 2*o.n)
			var n int
			err := retry(func() (err error) { n, err = unix.Pread(fd, back, 0); return err })
			if oc.call("pread", err) {
				oc.note(fmt.Sprintf("got=%d sha=%s", n, shaOf(back[:n])))
			}
		}
		closeFile(fd)
	default:
		panic("unknown op " + o.kind)
	}
	return oc.String()
}

// diffEntry is what is compared of one path.
type diffEntry struct {
	typ      string // file, dir, link, other
	perm     uint32 // mode & 07777
	size     int64  // files and links
	sum      string // files: sha256 of the content
	target   string // links
	uid, gid uint32
	nlink    uint64
	mtime    time.Time
	ino      uint64
}

// snapshot walks root without following symlinks. With dtype, the type
// readdir reports must be the one lstat reports.
func snapshot(root string, dtype bool) (map[string]diffEntry, error) {
	out := map[string]diffEntry{}
	var walk func(rel string) error
	walk = func(rel string) error {
		ents, err := os.ReadDir(filepath.Join(root, rel))
		if err != nil {
			return fmt.Errorf("readdir %q: %w", rel, err)
		}
		for _, de := range ents {
			r := filepath.Join(rel, de.Name())
			p := filepath.Join(root, r)
			var st unix.Stat_t
			if err := retry(func() error { return unix.Lstat(p, &st) }); err != nil {
				return fmt.Errorf("lstat %q: %w", r, err)
			}
			e := diffEntry{
				perm: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid, nlink: uint64(st.Nlink),
				mtime: time.Unix(st.Mtim.Unix()), ino: st.Ino, size: st.Size,
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				e.typ = "file"
				b, err := os.ReadFile(p)
				if err != nil {
					return fmt.Errorf("read %q: %w", r, err)
				}
				if int64(len(b)) != st.Size {
					return fmt.Errorf("read %q: %d bytes, stat says %d", r, len(b), st.Size)
				}
				e.sum = shaOf(b)
			case unix.S_IFDIR:
				e.typ = "dir"
				if err := walk(r); err != nil {
					return err
				}
			case unix.S_IFLNK:
				e.typ = "link"
				if e.target, err = os.Readlink(p); err != nil {
					return fmt.Errorf("readlink %q: %w", r, err)
				}
			default:
				e.typ = fmt.Sprintf("other(%#o)", st.Mode&unix.S_IFMT)
			}
			if dtype && de.Type()&os.ModeType != fileModeType(st.Mode) {
				return fmt.Errorf("readdir says %q is %v, lstat says %#o", r, de.Type(), st.Mode&unix.S_IFMT)
			}
			out[r] = e
		}
		return nil
	}
	return out, walk("")
}

// fileModeType is the os.FileMode type bits of a stat mode.
func fileModeType(mode uint32) os.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return os.ModeDir
	case unix.S_IFLNK:
		return os.ModeSymlink
	case unix.S_IFREG:
		return 0
	}
	return os.ModeIrregular
}

// mtimeOrigin is how a local entry got its mtime.
type mtimeOrigin struct {
	local  time.Time // the local mtime it explains
	exact  bool      // set by utimes: ampfs must show exactly local
	lo, hi time.Time // else: set by "now" within the step [lo, hi]
	step   int
}

// differ runs one seed.
type differ struct {
	t     *testing.T
	seed  uint64
	steps int
	rng   *rand.Rand
	ref   string // the reference directory
	mnt   string // the mount's directory
	flags []string
	ops   []string

	local   map[string]diffEntry
	origins map[uint64]mtimeOrigin // by local inode
	last    map[string]diffEntry   // the mount's tree after the last step
}

func runDifferential(t *testing.T, seed uint64, steps int, extra []string) {
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket, extra...)
	d := &differ{
		t: t, seed: seed, steps: steps, flags: extra,
		rng:     rand.New(rand.NewPCG(seed, 0xd1ff)),
		ref:     filepath.Join(t.TempDir(), "ref"),
		mnt:     m.dir,
		origins: map[uint64]mtimeOrigin{},
	}
	if err := os.Mkdir(d.ref, 0o755); err != nil {
		t.Fatal(err)
	}
	d.local = map[string]diffEntry{}
	start := time.Now()
	outcomes := map[string]int{} // "kind: last call=errno", for the log
	for step := 1; step <= steps; step++ {
		op := d.next()
		d.ops = append(d.ops, fmt.Sprintf("%3d  %v", step, op))
		t0 := time.Now()
		want := op.apply(d.ref)
		got := op.apply(d.mnt)
		t1 := time.Now()
		if want != got {
			d.fail(step, fmt.Sprintf("outcome differs:\n  local: %s\n  ampfs: %s", want, got))
		}
		res := "OK"
		for _, part := range strings.Fields(want) {
			if _, e, ok := strings.Cut(part, "="); ok && strings.HasPrefix(e, "E") {
				res = e
			}
		}
		outcomes[op.kind+" "+res]++
		d.ops[len(d.ops)-1] += "  => " + want
		d.check(step, op, t0, t1)
	}
	took := time.Since(start)

	// Everything again from a fresh mount with an empty cache: what the
	// first mount showed came from S3, not from its caches.
	m.stop(syscall.SIGTERM)
	m2 := mountAmpfs(t, srv, bucket, extra...)
	fresh, err := snapshot(m2.dir, false)
	if err != nil {
		d.fail(steps, "fresh mount: "+err.Error())
	}
	var diffs []string
	diffs = append(diffs, d.compare(d.local, fresh)...)
	for _, p := range sortedKeys(fresh) {
		f, l := fresh[p], d.last[p]
		if !f.mtime.Equal(l.mtime) {
			diffs = append(diffs, fmt.Sprintf("%s: mtime %s on the fresh mount, %s on the first", p, fmtTime(f.mtime), fmtTime(l.mtime)))
		}
	}
	if len(diffs) > 0 {
		d.fail(steps, "the fresh mount differs:\n  "+strings.Join(diffs, "\n  "))
	}
	var summary []string
	for _, k := range sortedKeys(outcomes) {
		summary = append(summary, fmt.Sprintf("%s:%d", k, outcomes[k]))
	}
	t.Logf("seed %d: %d steps in %v, %d entries at the end; outcomes: %s", seed, steps, took.Round(time.Millisecond), len(d.local), strings.Join(summary, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fmtTime(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

// fail ends the seed with everything a human needs to replay it.
func (d *differ) fail(step int, what string) {
	d.t.Helper()
	flags := ""
	if len(d.flags) > 0 {
		flags = fmt.Sprintf(" AMPFS_DIFF_FLAGS=%q", strings.Join(d.flags, " "))
	}
	d.t.Fatalf("seed %d, step %d: %s\n\noperations so far (replay: AMPFS_DIFF_SEEDS=%d AMPFS_DIFF_STEPS=%d%s go test -run TestDifferential ./integration):\n%s",
		d.seed, step, what, d.seed, step, flags, strings.Join(d.ops, "\n"))
}

// check compares the trees after a step that ran within [t0, t1].
func (d *differ) check(step int, op diffOp, t0, t1 time.Time) {
	d.t.Helper()
	local, err := snapshot(d.ref, true)
	if err != nil {
		d.t.Fatalf("local tree: %v", err)
	}
	mnt, err := snapshot(d.mnt, true)
	if err != nil {
		d.fail(step, "walking the mount: "+err.Error())
	}
	// Which local inode did a successful utimes set?
	var exactIno uint64
	if op.kind == "utimes" || op.kind == "lutimes" {
		var st unix.Stat_t
		p := filepath.Join(d.ref, op.path)
		var err error
		if op.kind == "utimes" {
			err = unix.Stat(p, &st)
		} else {
			err = unix.Lstat(p, &st)
		}
		if err == nil && time.Unix(st.Mtim.Unix()).Equal(op.mtime) {
			exactIno = st.Ino
			var root unix.Stat_t
			if err := unix.Stat(d.ref, &root); err != nil {
				d.t.Fatal(err)
			}
			// (Through a symlink to "." utimes can reach the root,
			// whose times are the mount's: not compared.)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Ino != root.Ino {
				// A directory's mtime is compared right after its utimes.
				var ast unix.Stat_t
				q := filepath.Join(d.mnt, op.path)
				if op.kind == "utimes" {
					err = unix.Stat(q, &ast)
				} else {
					err = unix.Lstat(q, &ast)
				}
				if err != nil || !time.Unix(ast.Mtim.Unix()).Equal(op.mtime) {
					d.fail(step, fmt.Sprintf("directory mtime after utimes: local %s, ampfs %s (%v)", fmtTime(op.mtime), fmtTime(time.Unix(ast.Mtim.Unix())), err))
				}
			}
		}
	}
	origins := map[uint64]mtimeOrigin{}
	for p, e := range local {
		if e.typ == "dir" {
			continue
		}
		o, ok := d.origins[e.ino]
		if !ok || !o.local.Equal(e.mtime) {
			o = mtimeOrigin{local: e.mtime, exact: e.ino == exactIno, lo: t0, hi: t1, step: step}
			// Sanity of the model: a "now" is now (the kernel's coarse
			// clock may lag time.Now by a tick).
			if !o.exact && (e.mtime.Before(t0.Add(-50*time.Millisecond)) || e.mtime.After(t1)) {
				d.t.Fatalf("test bug: local %s mtime %s changed in step %d but is outside [%s, %s]", p, fmtTime(e.mtime), step, fmtTime(t0), fmtTime(t1))
			}
		}
		origins[e.ino] = o
	}
	d.origins = origins
	d.local = local
	if diffs := d.compare(local, mnt); len(diffs) > 0 {
		d.fail(step, "trees differ:\n  "+strings.Join(diffs, "\n  "))
	}
	d.last = mnt
}

// compare lists the differences of the mount's tree from the local one,
// by the rules at the top of this file.
func (d *differ) compare(local, mnt map[string]diffEntry) []string {
	var out []string
	keys := sortedKeys(local)
	for k := range mnt {
		if _, ok := local[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, p := range keys {
		l, lok := local[p]
		a, aok := mnt[p]
		switch {
		case !aok:
			out = append(out, fmt.Sprintf("%s: missing in the mount (local: %s)", p, l.typ))
			continue
		case !lok:
			out = append(out, fmt.Sprintf("%s: only in the mount (%s)", p, a.typ))
			continue
		case l.typ != a.typ:
			out = append(out, fmt.Sprintf("%s: %s locally, %s in the mount", p, l.typ, a.typ))
			continue
		}
		field := func(name string, lv, av any) {
			if lv != av {
				out = append(out, fmt.Sprintf("%s: %s %v locally, %v in the mount", p, name, lv, av))
			}
		}
		field("mode", fmt.Sprintf("%#o", l.perm), fmt.Sprintf("%#o", a.perm))
		field("uid", l.uid, a.uid)
		field("gid", l.gid, a.gid)
		if l.typ == "dir" {
			continue
		}
		field("size", l.size, a.size)
		field("content", l.sum, a.sum)
		field("target", l.target, a.target)
		field("nlink", l.nlink, a.nlink)
		o := d.origins[l.ino]
		switch {
		case o.exact:
			if !a.mtime.Equal(l.mtime) {
				out = append(out, fmt.Sprintf("%s: mtime %s (set by utimes) locally, %s in the mount", p, fmtTime(l.mtime), fmtTime(a.mtime)))
			}
		case a.mtime.Before(o.lo) || a.mtime.After(o.hi):
			out = append(out, fmt.Sprintf("%s: mtime %s in the mount, but the local one (%s) was set in step %d, within [%s, %s]",
				p, fmtTime(a.mtime), fmtTime(l.mtime), o.step, fmtTime(o.lo), fmtTime(o.hi)))
		}
	}
	return out
}

// --- the random sequence ---

func (d *differ) chance(p float64) bool { return d.rng.Float64() < p }

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// existing returns the local paths of the given types, sorted.
func (d *differ) existing(types ...string) []string {
	var out []string
	for _, p := range sortedKeys(d.local) {
		for _, t := range types {
			if d.local[p].typ == t {
				out = append(out, p)
			}
		}
	}
	return out
}

// randomPath is a name from the pool in an existing directory (mostly),
// or anywhere up to three levels deep.
func (d *differ) randomPath() string {
	if dirs := d.existing("dir"); len(dirs) > 0 && d.chance(0.5) {
		return filepath.Join(pick(d.rng, dirs), pick(d.rng, namePool))
	}
	if d.chance(0.6) {
		return pick(d.rng, namePool)
	}
	depth := 2 + d.rng.IntN(2)
	parts := make([]string, depth)
	for i := range parts {
		parts[i] = pick(d.rng, namePool)
	}
	return filepath.Join(parts...)
}

// somePath is an existing path of the given types with probability p,
// else a random one.
func (d *differ) somePath(p float64, types ...string) string {
	if ex := d.existing(types...); len(ex) > 0 && d.chance(p) {
		return pick(d.rng, ex)
	}
	return d.randomPath()
}

func (d *differ) size(p string) int64 {
	if e, ok := d.local[p]; ok && e.typ == "file" {
		return e.size
	}
	return 0
}

// length is a write's size: mostly small, sometimes a few pages.
func (d *differ) length() int {
	switch {
	case d.chance(0.1):
		return 1
	case d.chance(0.2):
		return 4096 + d.rng.IntN(20000)
	}
	return 1 + d.rng.IntN(3000)
}

// offset is where a write starts in a file of size cur: inside, at the
// end, past it (a hole), or across the 1 MiB block boundary.
func (d *differ) offset(cur int64) int64 {
	switch r := d.rng.Float64(); {
	case r < 0.15:
		return 0
	case r < 0.35:
		return cur
	case r < 0.65:
		return d.rng.Int64N(cur + 1)
	case r < 0.95:
		return cur + 1 + d.rng.Int64N(20000)
	default:
		return 1<<20 - d.rng.Int64N(2000)
	}
}

// newSize is a truncate's size: shrink, grow, the same, zero.
func (d *differ) newSize(cur int64) int64 {
	switch r := d.rng.Float64(); {
	case r < 0.15:
		return 0
	case r < 0.3:
		return cur
	case r < 0.55:
		return d.rng.Int64N(cur + 1)
	case r < 0.95:
		return cur + 1 + d.rng.Int64N(30000)
	default:
		return 1<<20 + d.rng.Int64N(5000)
	}
}

// someTime is a utimes value: whole seconds or with nanoseconds; now and
// then before 1970 or after 2038.
func (d *differ) someTime() time.Time {
	sec := 1_000_000_000 + d.rng.Int64N(800_000_000)
	switch {
	case d.chance(0.05):
		sec = -d.rng.Int64N(1_000_000_000)
	case d.chance(0.05):
		sec = 2_200_000_000 + d.rng.Int64N(1_000_000_000)
	}
	var ns int64
	if d.chance(0.6) {
		ns = 1 + d.rng.Int64N(999_999_999)
		if d.chance(0.2) {
			ns = (ns / 1000) * 1000 // microseconds only (touch -d)
			if ns == 0 {
				ns = 1000
			}
		}
	}
	return time.Unix(sec, ns)
}

// linkTarget is a relative target without "..": an entry of the tree
// (seen from the link's directory), a pool name, or nothing at all.
func (d *differ) linkTarget(linkPath string) string {
	dir := filepath.Dir(linkPath)
	switch r := d.rng.Float64(); {
	case r < 0.5:
		var below []string
		for _, p := range sortedKeys(d.local) {
			if rel, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(rel, "..") {
				below = append(below, rel)
			}
		}
		if len(below) > 0 {
			return pick(d.rng, below)
		}
	case r < 0.6:
		return "."
	case r < 0.7:
		return "nowhere/at all"
	}
	return pick(d.rng, namePool)
}

var (
	fileModes = []uint32{0o644, 0o600, 0o755, 0o700, 0o444, 0o640, 0o604, 0o000, 0o777, 0o4755, 0o2750, 0o1644}
	dirModes  = []uint32{0o755, 0o700, 0o555, 0o777, 0o750, 0o1777, 0o311}
)

// next chooses the next operation from the reference tree alone.
func (d *differ) next() diffOp {
	type choice struct {
		weight int
		make   func() diffOp
	}
	r := d.rng
	choices := []choice{
		{12, func() diffOp {
			o := diffOp{kind: "create", path: d.somePath(0.2, "file", "dir", "link"), mode: pick(r, fileModes[:9]), pat: r.Uint64()}
			o.flag = unix.O_TRUNC
			if d.chance(0.5) {
				o.flag = unix.O_EXCL
			}
			if d.chance(0.7) {
				o.n = d.length()
			}
			return o
		}},
		{18, func() diffOp {
			p := d.somePath(0.85, "file", "link")
			o := diffOp{kind: "write", path: p, n: d.length(), pat: r.Uint64(), flag: unix.O_WRONLY, create: d.chance(0.3), sync: d.chance(0.1)}
			o.off = d.offset(d.size(p))
			if d.chance(0.3) {
				o.flag = unix.O_RDWR
			}
			if d.chance(0.1) {
				o.flag |= unix.O_APPEND
			}
			return o
		}},
		{7, func() diffOp {
			p := d.somePath(0.85, "file", "link")
			return diffOp{kind: "truncate", path: p, off: d.newSize(d.size(p))}
		}},
		{3, func() diffOp {
			p := d.somePath(0.85, "file")
			return diffOp{kind: "ftruncate", path: p, off: d.newSize(d.size(p))}
		}},
		{10, func() diffOp { // files (and links) onto anything
			o := diffOp{kind: "rename", path: d.somePath(0.85, "file", "link"), dst: d.somePath(0.4, "file", "link", "dir")}
			if d.chance(0.15) {
				o.flag = unix.RENAME_NOREPLACE
			}
			return o
		}},
		{7, func() diffOp { // directories, with what is in them
			o := diffOp{kind: "rename", path: d.somePath(0.85, "dir"), dst: d.somePath(0.35, "dir", "file")}
			if d.chance(0.15) {
				o.flag = unix.RENAME_NOREPLACE
			}
			return o
		}},
		{10, func() diffOp {
			return diffOp{kind: "mkdir", path: d.somePath(0.15, "dir", "file"), mode: pick(r, dirModes[:5])}
		}},
		{6, func() diffOp { return diffOp{kind: "rmdir", path: d.somePath(0.8, "dir", "file")} }},
		{7, func() diffOp { return diffOp{kind: "unlink", path: d.somePath(0.8, "file", "link", "dir")} }},
		{6, func() diffOp {
			p := d.somePath(0.9, "file", "dir", "link")
			modes := fileModes
			if fi, err := os.Stat(filepath.Join(d.ref, p)); err == nil && fi.IsDir() {
				modes = dirModes // (also through a symlink: no setgid on directories)
			}
			return diffOp{kind: "chmod", path: p, mode: pick(r, modes)}
		}},
		{8, func() diffOp {
			return diffOp{kind: "utimes", path: d.somePath(0.9, "file", "dir", "link"), mtime: d.someTime(), atime: d.someTime()}
		}},
		{2, func() diffOp {
			return diffOp{kind: "lutimes", path: d.somePath(0.9, "link", "file"), mtime: d.someTime(), atime: d.someTime()}
		}},
		{2, func() diffOp { return diffOp{kind: "touch", path: d.somePath(0.9, "file", "link")} }},
		{6, func() diffOp {
			p := d.somePath(0.15, "file", "link", "dir")
			return diffOp{kind: "symlink", path: p, dst: d.linkTarget(p)}
		}},
		{6, func() diffOp {
			p := d.somePath(0.9, "file", "link", "dir")
			o := diffOp{kind: "read", path: p}
			if d.chance(0.3) {
				o.off = d.rng.Int64N(d.size(p) + 10)
			}
			return o
		}},
		{2, func() diffOp {
			p := d.somePath(0.8, "file")
			return diffOp{kind: "wrw", path: p, dst: d.somePath(0.3, "file", "dir"), off: d.offset(d.size(p)), n: d.length(),
				off2: d.offset(d.size(p)), n2: d.length(), pat: r.Uint64()}
		}},
		{2, func() diffOp {
			return diffOp{kind: "unlinkopen", path: d.somePath(0.6, "file"), n: d.length(), pat: r.Uint64()}
		}},
	}
	total := 0
	for _, c := range choices {
		total += c.weight
	}
	n := r.IntN(total)
	for _, c := range choices {
		if n < c.weight {
			return c.make()
		}
		n -= c.weight
	}
	panic("unreachable")
}
