package fs

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/ampfs/ampfs/cache"
	"github.com/ampfs/ampfs/store/memstore"
)

// mountWhole mounts b with a disk cache, so files get whole local copies.
func mountWhole(t *testing.T, b *memstore.Bucket, opts Options) (string, *FS) {
	t.Helper()
	return mountWith(t, b, opts, cache.Options{DiskCacheDir: t.TempDir(), DiskCacheSize: 64 << 20, BlockSize: 64 << 10})
}

// readServed reads path whole and checks it is want, that no GET was sent,
// and that the kernel read it with passthrough (no READ reached us), or,
// where passthrough is unavailable, that every READ was served from the
// whole local file.
func readServed(t *testing.T, fsys *FS, b *memstore.Bucket, path string, want []byte) {
	t.Helper()
	b.ResetCalls()
	before := fsys.Stats()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, differing from the %d written", len(got), len(want))
	}
	if n := b.Calls("GetObject"); n != 0 {
		t.Errorf("%d GETs reading a file with a whole local copy", n)
	}
	st := fsys.Stats()
	reads, wholeReads := st.Reads-before.Reads, st.WholeReads-before.WholeReads
	if fsys.pt.disabled.Load() {
		t.Logf("passthrough unavailable here: %d reads from the whole file", wholeReads)
		if reads == 0 || reads != wholeReads {
			t.Errorf("%d READs, %d of them from the whole file", reads, wholeReads)
		}
		return
	}
	if st.PassthroughOpens != before.PassthroughOpens+1 || reads != 0 {
		t.Errorf("passthrough opens %d -> %d, %d READs reached ampfs", before.PassthroughOpens, st.PassthroughOpens, reads)
	}
}

func waitWhole(t *testing.T, fsys *FS, n int) {
	t.Helper()
	waitFor(t, func() bool { return len(fsys.Uploads()) == 0 && fsys.cache.Stats().WholeFiles >= n })
}

// TestPassthroughWrittenFile: a file written through the mount is, once
// uploaded, read from its local copy; a writer opening it while a
// passthrough reader has it open works, and later readers see the new
// data.
func TestPassthroughWrittenFile(t *testing.T) {
	b := memstore.New(memstore.Options{})
	mnt, fsys := mountWhole(t, b, Options{})
	p := mnt + "/f"
	data := randBytes(300 << 10)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	waitWhole(t, fsys, 1)
	readServed(t, fsys, b, p, data)

	old, err := b.Head(context.Background(), "f")
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	head := make([]byte, 100)
	if _, err := r.ReadAt(head, 0); err != nil || !bytes.Equal(head, data[:100]) {
		t.Fatalf("reader: %v", err)
	}
	// A writer beside the passthrough reader (the kernel refuses a cached
	// open there with EIO).
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open for writing beside a reader: %v", err)
	}
	newData := append(bytes.Repeat([]byte("new!"), 1000), data[4000:]...)
	if _, err := w.WriteAt(newData[:4000], 0); err != nil {
		t.Fatal(err)
	}
	// Another reader meanwhile sees the write.
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	if !bytes.Equal(got, newData) {
		t.Error("a reader opened after the write does not see it")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The first reader keeps the version it opened.
	if _, err := r.ReadAt(head, 0); err != nil || !bytes.Equal(head, data[:100]) {
		t.Fatalf("first reader after the write: %v", err)
	}
	waitFor(t, func() bool { return len(fsys.Uploads()) == 0 })
	// Still beside the old reader: not passed through, but no GET.
	b.ResetCalls()
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, newData) {
		t.Fatalf("read beside the old reader: %v", err)
	}
	if n := b.Calls("GetObject"); n != 0 {
		t.Errorf("%d GETs", n)
	}
	r.Close()
	// The staging file goes once no handle is open, as the new whole file.
	info, err := b.Head(context.Background(), "f")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		w, ok := fsys.cache.OpenWhole("f", info.ETag, info.Size)
		if ok {
			w.Close()
		}
		return ok
	})
	// A writable open joined the passthrough reader: the old copy, which
	// its mmap could have changed, is gone.
	if w, ok := fsys.cache.OpenWhole("f", old.ETag, old.Size); ok {
		w.Close()
		t.Error("the local copy a writer could map is still cached")
	}
	readServed(t, fsys, b, p, newData)
	if !bytes.Equal(object(t, b, "f"), newData) {
		t.Error("the server has other data")
	}
}

// TestPassthroughReadOnce: an object read once through the mount is then
// read from a whole local copy assembled from its blocks.
func TestPassthroughReadOnce(t *testing.T) {
	b := memstore.New(memstore.Options{})
	data := randBytes(1<<20 + 12345)
	put(t, b, "obj", data)
	mnt, fsys := mountWhole(t, b, Options{})
	if got, err := os.ReadFile(mnt + "/obj"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("first read: %v", err)
	}
	waitWhole(t, fsys, 1)
	readServed(t, fsys, b, mnt+"/obj", data)
	readServed(t, fsys, b, mnt+"/obj", data)
}

// TestPassthroughOff: with NoPassthrough, whole files are read with pread,
// still without GETs.
func TestPassthroughOff(t *testing.T) {
	b := memstore.New(memstore.Options{})
	mnt, fsys := mountWhole(t, b, Options{NoPassthrough: true})
	data := randBytes(200 << 10)
	if err := os.WriteFile(mnt+"/f", data, 0o644); err != nil {
		t.Fatal(err)
	}
	waitWhole(t, fsys, 1)
	readServed(t, fsys, b, mnt+"/f", data)
	if st := fsys.Stats(); st.PassthroughOpens != 0 || st.WholeReads == 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestPassthroughBesideCachedHandle: while a descriptor opened in the
// kernel's cached mode is open, a whole local copy is not passed through
// (the kernel would fail the open with EIO), and is once it is closed.
func TestPassthroughBesideCachedHandle(t *testing.T) {
	b := memstore.New(memstore.Options{})
	data := randBytes(500 << 10)
	put(t, b, "obj", data)
	mnt, fsys := mountWhole(t, b, Options{})
	r, err := os.Open(mnt + "/obj")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make([]byte, len(data))
	if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("first read: %v", err)
	}
	// The next open has the blocks assembled into a whole file.
	if got, err := os.ReadFile(mnt + "/obj"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("second read: %v", err)
	}
	waitWhole(t, fsys, 1)
	for range 2 {
		if got, err := os.ReadFile(mnt + "/obj"); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read beside a cached-mode descriptor: %v", err)
		}
	}
	if st := fsys.Stats(); st.PassthroughOpens != 0 {
		t.Errorf("passed through beside a cached-mode descriptor: %+v", st)
	}
	r.Close()
	waitFor(t, func() bool {
		f, err := os.Open(mnt + "/obj")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		return fsys.Stats().PassthroughOpens > 0 || fsys.pt.disabled.Load()
	})
	readServed(t, fsys, b, mnt+"/obj", data)
}
