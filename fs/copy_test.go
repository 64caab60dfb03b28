package fs

import (
	"bytes"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// A rename of an object over CopyObject's limit (5 GiB on S3; 12 MiB
// here) copies it in parts with UploadPartCopy, where it was EXDEV (issue
// 9): files, directories, and a source that changes during the copy.
func TestRenameOverCopyLimit(t *testing.T) {
	const limit = 12 << 20
	var (
		mu       sync.Mutex
		onCopy   func() // runs at the next UploadPartCopy
		copySeen int
	)
	b := memstore.New(memstore.Options{MaxCopySize: limit, Fault: func(op, key string) error {
		if op != memstore.OpUploadPartCopy {
			return nil
		}
		mu.Lock()
		f := onCopy
		onCopy = nil
		copySeen++
		mu.Unlock()
		if f != nil {
			f()
		}
		return nil
	}})
	md := map[string]string{"mode": "33261", "mtime": "1700000000"}
	big := randBytes(20 << 20)
	if _, err := b.Put(t.Context(), "big", bytes.NewReader(big), int64(len(big)), store.PutOptions{ContentType: "application/x-test", Metadata: md}); err != nil {
		t.Fatal(err)
	}
	put(t, b, "dir/", nil)
	put(t, b, "dir/x", big)
	put(t, b, "dir/small", []byte("small"))
	m := mountOpts(t, b, Options{MetadataTTL: 100 * time.Millisecond, SyncOnClose: true, MaxCopySize: limit, RenameJournal: t.TempDir()})

	// A file: two parts of 12 and 8 MiB, no CopyObject.
	if err := os.Rename(m.path("big"), m.path("moved")); err != nil {
		t.Fatalf("rename of a file over the copy limit: %v", err)
	}
	if got := object(t, b, "moved"); !bytes.Equal(got, big) {
		t.Fatalf("moved: %d bytes, want the %d of big", len(got), len(big))
	}
	_, info, _ := b.Object("moved")
	if !maps.Equal(info.Metadata, md) || info.ContentType != "application/x-test" {
		t.Errorf("moved: metadata %v, type %q; want %v and application/x-test", info.Metadata, info.ContentType, md)
	}
	if fi, err := os.Stat(m.path("moved")); err != nil || fi.Mode().Perm() != 0o755 || fi.Size() != int64(len(big)) {
		t.Errorf("stat moved: %v, %v", fi, err)
	}
	if n, c := b.Calls(memstore.OpUploadPartCopy), b.Calls(memstore.OpCopyObject); n != 2 || c != 0 {
		t.Errorf("%d UploadPartCopy and %d CopyObject calls, want 2 and 0", n, c)
	}

	// A directory: the large file in parts, the small one and the marker
	// as usual.
	if err := os.Rename(m.path("dir"), m.path("dir2")); err != nil {
		t.Fatalf("rename of a directory holding a file over the copy limit: %v", err)
	}
	if got := b.Keys(); !slices.Equal(got, []string{"dir2/", "dir2/small", "dir2/x", "moved"}) {
		t.Errorf("keys %q", got)
	}
	if got := object(t, b, "dir2/x"); !bytes.Equal(got, big) {
		t.Errorf("dir2/x: %d bytes", len(got))
	}

	// The source replaced while its parts are copied: that copy fails
	// (its parts are pinned to the ETag it started with) and is aborted.
	// The kernel retries a rename that failed with ESTALE once, after
	// looking the name up again: the new version is renamed, whole.
	other := randBytes(20 << 20)
	mu.Lock()
	onCopy = func() { put(t, b, "moved", other) }
	seen := copySeen
	mu.Unlock()
	err := os.Rename(m.path("moved"), m.path("again"))
	t.Logf("rename of a file replaced during its copy: %v", err)
	mu.Lock()
	if copySeen < seen+1 {
		t.Errorf("no part was copied")
	}
	mu.Unlock()
	name, gone := "again", "moved"
	if err != nil {
		name, gone = gone, name
	}
	if got := object(t, b, name); !bytes.Equal(got, other) {
		t.Errorf("%s: not the contents that replaced it", name)
	}
	if _, _, ok := b.Object(gone); ok {
		t.Errorf("%s is there too", gone)
	}
	if ups := b.Uploads(""); len(ups) != 0 {
		t.Errorf("multipart uploads left behind: %v", ups)
	}
}
