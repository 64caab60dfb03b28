package fs

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store/memstore"
)

// close returns before the upload; a file renamed while its upload is
// still running ends up under its new name only.
func TestRenameWhileUploading(t *testing.T) {
	release := make(chan struct{})
	b := memstore.New(memstore.Options{Fault: func(op, key string) error {
		if op == memstore.OpPutObject && key == "tmp" {
			<-release
		}
		return nil
	}})
	m := mountOpts(t, b, Options{}) // write-back: close does not wait
	start := time.Now()
	if err := os.WriteFile(m.path("tmp"), []byte("contents"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("close waited %v for a blocked upload", d)
	}
	if got, err := os.ReadFile(m.path("tmp")); err != nil || string(got) != "contents" {
		t.Errorf("read before upload: %q %v", got, err)
	}
	if err := os.Rename(m.path("tmp"), m.path("final")); err != nil {
		t.Fatal(err)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.fsys.cache.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the canceled upload's clean-up delete
	if got := object(t, b, "final"); string(got) != "contents" {
		t.Errorf("final = %q", got)
	}
	if _, _, ok := b.Object("tmp"); ok {
		t.Error("the old name reached the server")
	}
}

// A file renamed after its upload finished keeps its size and contents
// through repeated lookups answered by the listing, whose entry for the
// new name was noted by the rename (no size, no ETag: File.update ignores
// such entries).
func TestRenamedUploadedFileKeepsItsSize(t *testing.T) {
	b := memstore.New(memstore.Options{})
	// The kernel forgets entries at once (1 ms) while the listing stays
	// fresh (a frozen clock): every stat is a lookup the listing answers.
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	m := mountOpts(t, b, Options{MetadataTTL: time.Millisecond, Now: clock.Now})
	os.ReadDir(m.dir) // a listing to note changes in
	if err := os.WriteFile(m.path("tmp"), []byte("twelve bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.fsys.cache.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.path("tmp"), m.path("final")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		time.Sleep(5 * time.Millisecond)
		if got, err := os.ReadFile(m.path("final")); err != nil || string(got) != "twelve bytes" {
			t.Fatalf("read after rename: %q %v", got, err)
		}
	}
}
