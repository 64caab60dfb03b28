package fs

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ampfs/ampfs/cache"
	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// These tests mount the file system in-process over the in-memory store and
// use plain os calls on the mount; they never exec a child into it.

type testMount struct {
	dir    string
	bucket *memstore.Bucket
	fsys   *FS
}

func mount(t *testing.T, b *memstore.Bucket) *testMount {
	t.Helper()
	return mountLayout(t, b, nil)
}

func mountLayout(t *testing.T, b *memstore.Bucket, layout Layout) *testMount {
	t.Helper()
	// close(2) waits for the upload here, so tests can look at the bucket
	// right after; the write-back tests mount without it.
	return mountOpts(t, b, Options{Layout: layout, MetadataTTL: 100 * time.Millisecond, SyncOnClose: true})
}

func mountOpts(t *testing.T, b *memstore.Bucket, opts Options) *testMount {
	t.Helper()
	mnt, fsys := mountWith(t, b, opts, cache.Options{MultipartThreshold: store.MinPartSize, PartSize: store.MinPartSize})
	return &testMount{dir: mnt, bucket: b, fsys: fsys}
}

// mountBucket mounts any store.Bucket (mountOpts takes a *memstore.Bucket)
// with the cache's default part sizes, and returns the mountpoint and the
// file system.
func mountBucket(t *testing.T, b store.Bucket, opts Options) (string, *FS) {
	t.Helper()
	return mountWith(t, b, opts, cache.Options{})
}

// mountWith mounts b in-process with a cache made from co (its bucket,
// staging dir and logger filled in); cleanup unmounts, checks nothing is
// left mounted and closes the cache.
func mountWith(t *testing.T, b store.Bucket, opts Options, co cache.Options) (string, *FS) {
	t.Helper()
	if os.Geteuid() != 0 {
		if _, err := os.Stat("/usr/bin/fusermount3"); err != nil {
			t.Skip("needs root or fusermount3")
		}
	}
	base := t.TempDir()
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	co.Bucket, co.StagingDir, co.Logger = b, filepath.Join(base, "staging"), log
	c, err := cache.New(co)
	if err != nil {
		t.Fatal(err)
	}
	// After the unmount below (cleanups run last-in first-out): uploads
	// still retrying stop before the test's log goes away.
	t.Cleanup(c.Close)
	opts.Bucket, opts.Cache, opts.Logger = b, c, log
	fsys, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := fsys.Mount(mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		if data, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(data, []byte(" "+mnt+" ")) {
			t.Errorf("%s is still mounted", mnt)
		}
	})
	return mnt, fsys
}

func (m *testMount) path(p string) string { return filepath.Join(m.dir, p) }

func put(t *testing.T, b *memstore.Bucket, key string, data []byte) {
	t.Helper()
	if _, err := b.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func object(t *testing.T, b *memstore.Bucket, key string) []byte {
	t.Helper()
	data, _, ok := b.Object(key)
	if !ok {
		t.Fatalf("object %q missing; have %q", key, b.Keys())
	}
	return data
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

func TestWriteReadRoundTrip(t *testing.T) {
	m := mount(t, memstore.New(memstore.Options{}))
	for _, size := range []int{0, 1, 4096, 3*int(store.MinPartSize) + 17} {
		name := "f" + itoa(int64(size))
		data := randBytes(size)
		if err := os.WriteFile(m.path(name), data, 0o644); err != nil {
			t.Fatalf("write %d bytes: %v", size, err)
		}
		if got := object(t, m.bucket, name); !bytes.Equal(got, data) {
			t.Fatalf("size %d: object differs (%d bytes)", size, len(got))
		}
		got, err := os.ReadFile(m.path(name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: read back %d bytes, err %v", size, len(got), err)
		}
		fi, err := os.Stat(m.path(name))
		if err != nil || fi.Size() != int64(size) {
			t.Fatalf("stat %s: %v %v", name, fi, err)
		}
	}
	if ups := m.bucket.Uploads(""); len(ups) != 0 {
		t.Errorf("multipart uploads left behind: %v", ups)
	}
	if m.bucket.Calls(memstore.OpCompleteMultipartUpload) != 1 {
		t.Errorf("want one multipart upload for the large file, got %d", m.bucket.Calls(memstore.OpCompleteMultipartUpload))
	}
}

func TestReaddir(t *testing.T) {
	b := memstore.New(memstore.Options{}) // 3 keys per list page
	for _, k := range []string{"a", "b/", "c/x", "c/y/z", "d", "e", "f/", "f/g", "both", "both/x", "x//y", "../up", "./dot"} {
		put(t, b, k, []byte(k))
	}
	m := mount(t, b)
	// "x/" is shown (its only key, x//y, has an empty segment and is hidden).
	want := []string{"a", "b/", "both/", "c/", "d", "e", "f/", "x/"}
	if got := names(t, m.dir); !slices.Equal(got, want) {
		t.Errorf("root = %q, want %q", got, want)
	}
	if got := names(t, m.path("c")); !slices.Equal(got, []string{"x", "y/"}) {
		t.Errorf("c = %q", got)
	}
	if got := names(t, m.path("b")); len(got) != 0 {
		t.Errorf("b = %q, want empty", got)
	}
	if got := names(t, m.path("x")); len(got) != 0 {
		t.Errorf("x (only x//y below) = %q, want empty", got)
	}
	if _, err := os.Stat(m.path("nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat missing: %v", err)
	}
}

// A readdir sends no HEAD (find needs none); the first stat of a listed
// file reads the metadata of all of them at once, one HEAD each, and the
// stats are answered from the listing.
func TestLookupAfterListingSendsNoRequests(t *testing.T) {
	b := memstore.New(memstore.Options{})
	for i := range 20 {
		put(t, b, "dir/f"+itoa(int64(i)), []byte("x"))
	}
	m := mount(t, b)
	if _, err := os.Stat(m.path("dir")); err != nil {
		t.Fatal(err)
	}
	b.ResetCalls()
	ents, err := os.ReadDir(m.path("dir"))
	if err != nil || len(ents) != 20 {
		t.Fatalf("readdir: %d entries, %v", len(ents), err)
	}
	if n := b.Calls(memstore.OpHeadObject); n != 0 {
		t.Errorf("readdir sent %d HEADs", n)
	}
	b.ResetCalls()
	for _, e := range ents {
		if _, err := os.Stat(m.path("dir/" + e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if n, heads := b.TotalCalls(), b.Calls(memstore.OpHeadObject); heads != 20 || n != heads {
		t.Errorf("stats after readdir sent %d requests, %d HEADs; want one HEAD per file", n, heads)
	}
	b.ResetCalls()
	for _, e := range ents {
		if _, err := os.Stat(m.path("dir/" + e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.TotalCalls(); n != 0 {
		t.Errorf("stats again sent %d requests", n)
	}
}

func TestMkdirRmdir(t *testing.T) {
	m := mount(t, memstore.New(memstore.Options{}))
	if err := os.Mkdir(m.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	object(t, m.bucket, "d/")
	if err := os.WriteFile(m.path("d/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.path("d")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir non-empty: %v, want ENOTEMPTY", err)
	}
	if err := os.Remove(m.path("d/f")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.path("d")); err != nil {
		t.Fatalf("rmdir empty: %v", err)
	}
	if keys := m.bucket.Keys(); len(keys) != 0 {
		t.Errorf("left keys %q", keys)
	}
}

func TestRename(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "src", []byte("hello"))
	put(t, b, "dst", []byte("old"))
	put(t, b, "dir/x", []byte("x"))
	m := mount(t, b)
	if err := os.Rename(m.path("src"), m.path("dst")); err != nil {
		t.Fatal(err)
	}
	if got := object(t, b, "dst"); string(got) != "hello" {
		t.Errorf("dst = %q", got)
	}
	if _, _, ok := b.Object("src"); ok {
		t.Error("src still exists")
	}
	if err := os.Rename(m.path("dir"), m.path("dir2")); err != nil {
		t.Errorf("rename dir: %v", err)
	}
	if got := object(t, b, "dir2/x"); string(got) != "x" {
		t.Errorf("dir2/x = %q", got)
	}
	// A file renamed before its first upload goes straight to its new key.
	f, err := os.Create(m.path("tmp"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new content")
	if err := os.Rename(m.path("tmp"), m.path("final")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := object(t, b, "final"); string(got) != "new content" {
		t.Errorf("final = %q", got)
	}
	if _, _, ok := b.Object("tmp"); ok {
		t.Error("tmp exists")
	}
}

func TestTruncateAndAppend(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "f", []byte("0123456789"))
	m := mount(t, b)
	if err := os.Truncate(m.path("f"), 4); err != nil {
		t.Fatal(err)
	}
	if got := object(t, b, "f"); string(got) != "0123" {
		t.Errorf("after truncate: %q", got)
	}
	f, err := os.OpenFile(m.path("f"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("abc"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := object(t, b, "f"); string(got) != "0123abc" {
		t.Errorf("after append: %q", got)
	}
}

func TestReadYourWrites(t *testing.T) {
	m := mount(t, memstore.New(memstore.Options{}))
	w, err := os.Create(m.path("f"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString("not yet uploaded")
	got, err := os.ReadFile(m.path("f"))
	if err != nil || string(got) != "not yet uploaded" {
		t.Fatalf("read before close: %q %v", got, err)
	}
	if names := names(t, m.dir); !slices.Contains(names, "f") {
		t.Errorf("ls does not show the open file: %q", names)
	}
}

// An upload that fails makes close (with SyncOnClose) and fsync fail, but
// the data stays committed and visible, is retried, and reaches the server
// once it answers again.
func TestFailedUploadIsReportedAndKept(t *testing.T) {
	b := memstore.New(memstore.Options{})
	m := mount(t, b)
	b.SetFault(memstore.OpPutObject, store.ErrUnavailable, -1)
	err := os.WriteFile(m.path("f"), []byte("precious"), 0o644)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("close with the server failing: %v, want EIO", err)
	}
	st := m.fsys.cache.Status()
	if len(st) != 1 || st[0].Key != "f" || st[0].State == "" || st[0].Err == "" {
		t.Fatalf("status = %+v, want one failed upload of f", st)
	}
	if got, err := os.ReadFile(m.path("f")); err != nil || string(got) != "precious" {
		t.Errorf("the failed file reads %q, %v", got, err)
	}
	b.ClearFaults()
	waitFor(t, func() bool { _, _, ok := b.Object("f"); return ok })
	if got := object(t, b, "f"); string(got) != "precious" {
		t.Errorf("after retry: %q", got)
	}
}

func TestAccessDeniedIsEACCES(t *testing.T) {
	b := memstore.New(memstore.Options{})
	m := mount(t, b)
	b.SetFault(memstore.OpPutObject, store.ErrAccessDenied, -1)
	if err := os.WriteFile(m.path("f"), []byte("x"), 0o644); !errors.Is(err, syscall.EACCES) {
		t.Errorf("write: %v, want EACCES", err)
	}
	if err := os.Mkdir(m.path("d"), 0o755); !errors.Is(err, syscall.EACCES) {
		t.Errorf("mkdir: %v, want EACCES", err)
	}
	b.ClearFaults()
	os.Remove(m.path("f"))
}

func TestUnlinkCancelsPendingUpload(t *testing.T) {
	b := memstore.New(memstore.Options{})
	m := mount(t, b)
	f, err := os.Create(m.path("f"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("doomed")
	if err := os.Remove(m.path("f")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if keys := b.Keys(); len(keys) != 0 {
		t.Errorf("keys after unlink+close: %q", keys)
	}
	if m.fsys.Dirty() != 0 {
		t.Errorf("dirty = %d", m.fsys.Dirty())
	}
}

func TestServerSideChangesAppear(t *testing.T) {
	b := memstore.New(memstore.Options{})
	m := mount(t, b)
	if got := names(t, m.dir); len(got) != 0 {
		t.Fatalf("root = %q", got)
	}
	put(t, b, "new", []byte("from s3"))
	waitFor(t, func() bool { _, err := os.Stat(m.path("new")); return err == nil })
	got, err := os.ReadFile(m.path("new"))
	if err != nil || string(got) != "from s3" {
		t.Fatalf("read: %q %v", got, err)
	}
	b.Delete(t.Context(), "new")
	waitFor(t, func() bool { _, err := os.Stat(m.path("new")); return errors.Is(err, os.ErrNotExist) })
}

func TestStatfs(t *testing.T) {
	m := mount(t, memstore.New(memstore.Options{}))
	var st syscall.Statfs_t
	if err := syscall.Statfs(m.dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks == 0 || st.Bavail == 0 || st.Namelen != 255 {
		t.Errorf("statfs = %+v", st)
	}
}

func TestNamesTooLong(t *testing.T) {
	m := mount(t, memstore.New(memstore.Options{}))
	long := strings.Repeat("n", 256)
	if err := os.WriteFile(m.path(long), nil, 0o644); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("create 256-byte name: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 3s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Operations ampfs does not support yet answer ENOTSUP (or EXDEV), never
// ENOSYS, which the kernel would remember as "never ask again".
func TestUnsupportedOpsAreNotENOSYS(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "f", []byte("x"))
	m := mount(t, b)
	checks := []struct {
		name string
		err  error
	}{
		{"link", os.Link(m.path("f"), m.path("g"))},
		{"mknod", syscall.Mknod(m.path("fifo"), syscall.S_IFIFO|0o644, 0)},
	}
	for _, c := range checks {
		if c.err == nil || errors.Is(c.err, syscall.ENOSYS) {
			t.Errorf("%s: %v, want a clean refusal", c.name, c.err)
		}
	}
	d, err := os.Open(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Errorf("fsync of a directory: %v", err)
	}
}

func TestXattrs(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "f", []byte("x"))
	m := mount(t, b)
	buf := make([]byte, 256)
	n, err := syscall.Getxattr(m.path("f"), "user.ampfs.etag", buf)
	_, info, _ := b.Object("f")
	if err != nil || string(buf[:n]) != info.ETag {
		t.Errorf("etag xattr = %q, %v; want %q", buf[:n], err, info.ETag)
	}
	if _, err := syscall.Getxattr(m.path("f"), "user.ampfs.url", buf); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("url xattr without a presigner: %v, want ENODATA", err)
	}
	if err := syscall.Setxattr(m.path("f"), "user.ampfs.etag", []byte("x"), 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("set etag: %v, want EPERM", err)
	}
}

// fakeClock is an injected clock: TTLs expire without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// A listing answers lookups for the TTL (no requests, and "not there" for
// names it lacks); after it, the server is asked again. A create through
// the mount is seen at once.
func TestListingTTL(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	b := memstore.New(memstore.Options{})
	put(t, b, "d/a", []byte("a"))
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute, Now: clock.Now})
	if got := names(t, m.path("d")); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("d = %q", got)
	}
	put(t, b, "d/new", []byte("n"))
	b.ResetCalls()
	if _, err := os.Stat(m.path("d/new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("within the TTL the listing says new is not there: %v", err)
	}
	if _, err := os.Stat(m.path("d/a")); err != nil {
		t.Errorf("stat a: %v", err)
	}
	// The one HEAD is a's metadata, read at its first stat (meta_lazy.go).
	if n, heads := b.TotalCalls(), b.Calls(memstore.OpHeadObject); n != heads || heads > 1 {
		t.Errorf("lookups within the TTL sent %d requests, %d of them HEADs", n, heads)
	}
	// A file created through the mount drops the negative answer at once.
	if err := os.WriteFile(m.path("d/mine"), []byte("m"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.path("d/mine")); err != nil {
		t.Errorf("own create not visible: %v", err)
	}
	clock.Advance(time.Minute)
	if _, err := os.Stat(m.path("d/new")); err != nil {
		t.Errorf("after the TTL the server's new file is visible: %v", err)
	}
}

// ls -l of a large directory: the listing's pages, and no HEAD at all.
func TestLsLargeDirNoHeads(t *testing.T) {
	b := memstore.New(memstore.Options{MaxListKeys: 1000})
	for i := range 2500 {
		put(t, b, fmt.Sprintf("big/f%05d", i), []byte("x"))
	}
	m := mountOpts(t, b, Options{}) // the default TTL, 1 s
	os.Stat(m.path("big"))
	b.ResetCalls()
	ents, err := os.ReadDir(m.path("big"))
	if err != nil || len(ents) != 2500 {
		t.Fatalf("readdir: %d, %v", len(ents), err)
	}
	for _, e := range ents {
		if _, err := e.Info(); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.Calls(memstore.OpHeadObject); n != 0 {
		t.Errorf("ls -l sent %d HEADs", n)
	}
	if n := b.Calls(memstore.OpListObjectsV2); n > 3 {
		t.Errorf("ls -l of 2,500 entries sent %d LISTs, want 3 pages", n)
	}
}

// Files created in a directory this mount just made cost no lookup
// requests: its listing is known to be empty.
func TestNewDirectoryNeedsNoLookups(t *testing.T) {
	b := memstore.New(memstore.Options{})
	// A TTL the creates cannot outlast on a loaded machine (mount's 100
	// ms did, with close waiting for each upload: the kernel looked "new"
	// up again); an expired listing is TestExpiredListingIsReadAgainForNewNames.
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute})
	if err := os.Mkdir(m.path("new"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.ResetCalls()
	for i := range 5 {
		if err := os.WriteFile(m.path(fmt.Sprintf("new/f%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.Calls(memstore.OpHeadObject) + b.Calls(memstore.OpListObjectsV2); n != 0 {
		t.Errorf("creating 5 files in a new directory sent %d lookups", n)
	}
	if got := names(t, m.path("new")); len(got) != 5 {
		t.Errorf("new = %q", got)
	}
}
