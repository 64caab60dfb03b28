package fs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ampfs/ampfs/fs/access"
	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

func putMeta(t *testing.T, b *memstore.Bucket, key string, data []byte, md map[string]string) {
	t.Helper()
	if _, err := b.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), store.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
}

func metaOfKey(t *testing.T, b *memstore.Bucket, key string) map[string]string {
	t.Helper()
	info, err := b.Head(t.Context(), key)
	if err != nil {
		t.Fatalf("head %s: %v", key, err)
	}
	return info.Metadata
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return &st
}

// chmod, chown and utimes of a clean file are a metadata-only copy in
// s3fs's format, seen again by a fresh mount.
func TestChmodChownUtimesPersist(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "f", []byte("data"))
	m := mount(t, b)
	mtime := time.Unix(1_500_000_000, 123_000_000)
	b.ResetCalls()
	if err := os.Chmod(m.path("f"), 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(m.path("f"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(m.path("f"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if n := b.Calls(memstore.OpPutObject); n != 0 {
		t.Errorf("metadata changes re-uploaded the data %d times", n)
	}
	if n := b.Calls(memstore.OpCopyObject); n != 3 {
		t.Errorf("%d copies, want 3 metadata-only self-copies", n)
	}
	md := metaOfKey(t, b, "f")
	want := map[string]string{"mode": fmt.Sprint(syscall.S_IFREG | 0o751), "uid": "1234", "gid": "5678", "mtime": "1500000000.123000000"}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("x-amz-meta-%s = %q, want %q (all: %v)", k, md[k], v, md)
		}
	}
	if got := object(t, b, "f"); string(got) != "data" {
		t.Errorf("data changed: %q", got)
	}
	m2 := mount(t, b)
	st := lstat(t, m2.path("f"))
	if st.Mode != syscall.S_IFREG|0o751 || st.Uid != 1234 || st.Gid != 5678 || st.Mtim.Sec != mtime.Unix() || st.Mtim.Nsec != 123_000_000 {
		t.Errorf("fresh mount: mode %o uid %d gid %d mtime %d.%09d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec)
	}
}

// A file still being written takes its metadata along in its upload: no
// copy, one PUT.
func TestChmodWhileDirtyFoldsIntoUpload(t *testing.T) {
	b := memstore.New(memstore.Options{})
	m := mount(t, b)
	f, err := os.OpenFile(m.path("x"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("hello"))
	mtime := time.Unix(1_400_000_000, 0)
	if err := f.Chmod(0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(m.path("x"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n := b.Calls(memstore.OpCopyObject); n != 0 {
		t.Errorf("%d copies for a dirty file", n)
	}
	md := metaOfKey(t, b, "x")
	if md["mode"] != fmt.Sprint(syscall.S_IFREG|0o640) || md["mtime"] != "1400000000" {
		t.Errorf("metadata %v", md)
	}
	if fi, err := os.Stat(m.path("x")); err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
		t.Errorf("stat: %v %v", fi, err)
	}
}

// Objects written by s3fs (or anyone storing its headers) show their modes
// and times; objects without them the defaults and LastModified.
func TestS3fsMetadataIsRead(t *testing.T) {
	b := memstore.New(memstore.Options{})
	putMeta(t, b, "d/s3fs.txt", []byte("x"), map[string]string{"mode": "33184", "uid": "1000", "gid": "1000", "mtime": "1600000000"}) // 0100640
	putMeta(t, b, "d/sub/", nil, map[string]string{"mode": "16832", "mtime": "1600000001"})                                           // 040700
	put(t, b, "d/plain.txt", []byte("y"))
	m := mountOpts(t, b, Options{MetadataTTL: 100 * time.Millisecond, FileMode: 0o604, DirMode: 0o705, UID: 7, GID: 8})
	// Through a listing (readdir then lstat, as ls -l does).
	ents, err := os.ReadDir(m.path("d"))
	if err != nil || len(ents) != 3 {
		t.Fatalf("readdir: %v %v", ents, err)
	}
	st := lstat(t, m.path("d/s3fs.txt"))
	if st.Mode != 0o100640 || st.Uid != 1000 || st.Mtim.Sec != 1_600_000_000 {
		t.Errorf("s3fs file: mode %o uid %d mtime %d", st.Mode, st.Uid, st.Mtim.Sec)
	}
	st = lstat(t, m.path("d/sub"))
	if st.Mode != syscall.S_IFDIR|0o700 || st.Mtim.Sec != 1_600_000_001 {
		t.Errorf("s3fs dir: mode %o mtime %d", st.Mode, st.Mtim.Sec)
	}
	st = lstat(t, m.path("d/plain.txt"))
	_, info, _ := b.Object("d/plain.txt")
	if st.Mode != syscall.S_IFREG|0o604 || st.Uid != 7 || st.Gid != 8 || st.Mtim.Sec != info.LastModified.Unix() {
		t.Errorf("plain file: mode %o uid %d gid %d mtime %d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec)
	}
}

// Beyond metaHeadBudget unknown entries a readdir sends no HEAD: the
// listing's defaults are shown; a file looked up on its own shows its
// stored metadata.
func TestLargeDirShowsListingDefaults(t *testing.T) {
	b := memstore.New(memstore.Options{})
	for i := range metaHeadBudget + 1 {
		putMeta(t, b, fmt.Sprintf("big/f%04d", i), []byte("x"), map[string]string{"mode": "33261"}) // 0100755
	}
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute})
	os.Stat(m.path("big"))
	b.ResetCalls()
	ents, err := os.ReadDir(m.path("big"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, err := e.Info(); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.Calls(memstore.OpHeadObject); n != 0 {
		t.Errorf("readdir of %d unknown entries sent %d HEADs", len(ents), n)
	}
	// A small directory gets its metadata read at readdir, in parallel.
	for i := range 10 {
		putMeta(t, b, fmt.Sprintf("small/f%d", i), []byte("x"), map[string]string{"mode": "33261"})
	}
	ents, err = os.ReadDir(m.path("small"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", e.Name(), fi.Mode(), err)
		}
	}
}

func TestSymlink(t *testing.T) {
	b := memstore.New(memstore.Options{})
	m := mount(t, b)
	if err := os.Symlink("../target/file", m.path("link")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(m.path("link")); err != nil || got != "../target/file" {
		t.Errorf("readlink = %q, %v", got, err)
	}
	if got := object(t, b, "link"); string(got) != "../target/file" {
		t.Errorf("object body %q", got)
	}
	if md := metaOfKey(t, b, "link"); md["mode"] != fmt.Sprint(syscall.S_IFLNK|0o777) {
		t.Errorf("metadata %v", md)
	}
	if err := os.Symlink("x", m.path("link")); !errors.Is(err, os.ErrExist) {
		t.Errorf("symlink over an existing name: %v", err)
	}
	// A link made by s3fs, seen by a fresh mount through its listing and
	// on its own.
	putMeta(t, b, "dir/s3fslink", []byte("/etc/hostname"), map[string]string{"mode": fmt.Sprint(syscall.S_IFLNK | 0o777)})
	m2 := mount(t, b)
	if got := names(t, m2.path("dir")); !slices.Equal(got, []string{"s3fslink"}) {
		t.Errorf("dir = %q", got)
	}
	// Before anything stats it, getdents has only the listing's type
	// (meta_lazy.go); once stat'ed, the link is a link in getdents too.
	for _, p := range []string{"dir/s3fslink", "link"} {
		st := lstat(t, m2.path(p))
		if st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			t.Errorf("%s: mode %o", p, st.Mode)
		}
	}
	if got, err := os.Readlink(m2.path("dir/s3fslink")); err != nil || got != "/etc/hostname" {
		t.Errorf("readlink of s3fs link = %q, %v", got, err)
	}
	if ents, _ := os.ReadDir(m2.path("dir")); len(ents) != 1 || ents[0].Type() != os.ModeSymlink {
		t.Errorf("readdir type after a stat: %v", ents)
	}
	// Renamed and removed like files.
	if err := os.Rename(m2.path("link"), m2.path("dir/moved")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(m2.path("dir/moved")); err != nil || got != "../target/file" {
		t.Errorf("readlink after rename = %q, %v", got, err)
	}
	if err := os.Remove(m2.path("dir/moved")); err != nil {
		t.Fatal(err)
	}
	if keys := b.Keys(); !slices.Equal(keys, []string{"dir/s3fslink"}) {
		t.Errorf("keys %q", keys)
	}
}

func TestUserXattrs(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "f", []byte("x"))
	m := mount(t, b)
	p := m.path("f")
	if err := unix.Setxattr(p, "user.color", []byte("blue\x00\xff"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.color", []byte("red"), unix.XATTR_CREATE); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("XATTR_CREATE of an existing one: %v", err)
	}
	if err := unix.Setxattr(p, "user.none", []byte("x"), unix.XATTR_REPLACE); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("XATTR_REPLACE of a missing one: %v", err)
	}
	for _, ns := range []string{"security.selinux", "trusted.x"} {
		if err := unix.Setxattr(p, ns, []byte("x"), 0); !errors.Is(err, syscall.ENOTSUP) {
			t.Errorf("set %s: %v, want ENOTSUP", ns, err)
		}
	}
	if err := unix.Setxattr(p, "user.big", bytes.Repeat([]byte("x"), 2000), 0); !errors.Is(err, syscall.E2BIG) {
		t.Errorf("2000 bytes: %v, want E2BIG", err)
	}
	raw := metaOfKey(t, b, "f")["xattr"]
	if !strings.HasPrefix(raw, "%7B%22user.color%22%3A%22") {
		t.Errorf("x-amz-meta-xattr = %q, want s3fs's URL-encoded JSON", raw)
	}
	m2 := mount(t, b)
	buf := make([]byte, 64)
	n, err := unix.Getxattr(m2.path("f"), "user.color", buf)
	if err != nil || string(buf[:n]) != "blue\x00\xff" {
		t.Errorf("get after remount = %q, %v", buf[:n], err)
	}
	n, err = unix.Listxattr(m2.path("f"), buf)
	if err != nil || !strings.Contains(string(buf[:n]), "user.color\x00") {
		t.Errorf("list = %q, %v", buf[:n], err)
	}
	if err := unix.Removexattr(m2.path("f"), "user.color"); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Getxattr(m2.path("f"), "user.color", buf); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("after remove: %v", err)
	}
	if _, ok := metaOfKey(t, b, "f")["xattr"]; ok {
		t.Errorf("xattr header left after the last attribute was removed")
	}
}

// What the rules make read-only stays read-only whatever the stored mode.
func TestAmplifyRulesCapStoredMode(t *testing.T) {
	b := memstore.New(memstore.Options{})
	putMeta(t, b, "public/w.txt", []byte("x"), map[string]string{"mode": "33206"}) // 0100666
	g := mountAs(t, b, access.Subject{})
	if got := mode(t, g.path("public/w.txt")); got != 0o444 {
		t.Errorf("guest sees stored 0666 as %o, want 0444", got)
	}
	if err := os.Chmod(g.path("public/w.txt"), 0o777); !errors.Is(err, syscall.EACCES) {
		t.Errorf("guest chmod: %v, want EACCES", err)
	}
}

func TestMtimeFormat(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"1600000000", time.Unix(1_600_000_000, 0)},
		{"1600000000.5", time.Unix(1_600_000_000, 500_000_000)},
		{"1600000000.000000001", time.Unix(1_600_000_000, 1)},
		{"junk", time.Time{}},
		{"", time.Time{}},
	} {
		if got := parseMtime(c.in); !got.Equal(c.want) {
			t.Errorf("parseMtime(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	for _, tm := range []time.Time{time.Unix(5, 0), time.Unix(5, 7), time.Unix(1_700_000_000, 999_999_999)} {
		if got := parseMtime(formatMtime(tm)); !got.Equal(tm) {
			t.Errorf("round trip of %v: %v (%q)", tm, got, formatMtime(tm))
		}
	}
	x := map[string][]byte{"user.a": []byte("1"), "user.b,c": []byte{0, 1, 2}}
	if got := decodeXattrs(encodeXattrs(x)); len(got) != 1 || string(got["user.a"]) != "1" {
		// A name with ',' does not survive s3fs's format either.
		t.Logf("decode(encode) = %q", got)
	}
}

// A walk that needs only names and types (find, du -s, filepath.WalkDir)
// sends no HEAD per file: at most one per directory, for its marker's
// metadata. A stat of one file then reads its directory's files together.
func TestWalkSendsNoHeadPerFile(t *testing.T) {
	b := memstore.New(memstore.Options{})
	const dirs, files = 4, 12
	for d := range dirs {
		for f := range files {
			put(t, b, fmt.Sprintf("t/d%d/f%02d", d, f), []byte("x"))
		}
	}
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute})
	b.ResetCalls()
	n := 0
	err := filepath.WalkDir(m.path("t"), func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil || n != dirs*files {
		t.Fatalf("walk: %d files, %v", n, err)
	}
	if heads := b.Calls(memstore.OpHeadObject); heads > dirs+1 {
		t.Errorf("a walk of %d files in %d directories sent %d HEADs; want at most one per directory", n, dirs, heads)
	}
	b.ResetCalls()
	if _, err := os.Lstat(m.path("t/d0/f00")); err != nil {
		t.Fatal(err)
	}
	if heads := b.Calls(memstore.OpHeadObject); heads != files {
		t.Errorf("the first stat in a listed directory sent %d HEADs, want %d (its files, together)", heads, files)
	}
}

// TestOtherXattrNamespacesAreNotSupported: reads of security.*, system.* and
// trusted.* answer ENOTSUP on files, symlinks and directories, so GNU ls -l
// stops asking for the SELinux label and ACL of every file after the first
// (a FUSE round trip each); user.* names a file lacks stay ENODATA.
func TestOtherXattrNamespacesAreNotSupported(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "d/f", []byte("x"))
	m := mount(t, b)
	if err := os.Symlink("f", m.path("d/l")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for _, p := range []string{"d", "d/f", "d/l"} {
		for _, name := range []string{"security.selinux", "system.posix_acl_access", "system.posix_acl_default", "trusted.x", "security.capability"} {
			if _, err := unix.Lgetxattr(m.path(p), name, buf); !errors.Is(err, syscall.ENOTSUP) {
				t.Errorf("lgetxattr(%s, %s) = %v, want ENOTSUP", p, name, err)
			}
		}
		if _, err := unix.Lgetxattr(m.path(p), "user.none", buf); !errors.Is(err, syscall.ENODATA) {
			t.Errorf("lgetxattr(%s, user.none) = %v, want ENODATA", p, err)
		}
	}
	// A write still works (the kernel reads security.capability first).
	if err := os.WriteFile(m.path("d/f"), []byte("yz"), 0o644); err != nil {
		t.Fatal(err)
	}
}
