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
