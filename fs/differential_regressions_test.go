package fs

// Regression tests of bugs the integration test TestDifferential found
// (integration/differential_test.go), each reduced to its smallest case.

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// A directory's marker is copied by a rename as HEAD + PUT of an empty
// object, never CopyObject: versitygw refuses to copy a directory object
// (DirectoryObjectContainsData), which made every rename of a directory
// made by mkdir fail with EINVAL there (found by the integration test
// TestDifferential). The copy keeps the marker's metadata: its mode.
func TestRenameDirectoryCopiesMarkerWithoutCopyObject(t *testing.T) {
	b := memstore.New(memstore.Options{Fault: func(op, key string) error {
		if op == memstore.OpCopyObject && strings.HasSuffix(key, "/") {
			return &store.OpError{Op: op, Key: key, Code: "DirectoryObjectContainsData", Kind: store.ErrInvalidArgument}
		}
		return nil
	}})
	m := mountOpts(t, b, Options{MetadataTTL: 100e6, SyncOnClose: true, RenameJournal: t.TempDir()})
	if err := os.Mkdir(m.path("a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.path("a/sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.path("a/sub/f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.path("a"), m.path("b")); err != nil {
		t.Fatalf("rename of a directory: %v", err)
	}
	if got := b.Keys(); !slices.Equal(got, []string{"b/", "b/sub/", "b/sub/f"}) {
		t.Errorf("keys after rename: %q", got)
	}
	for key, want := range map[string]string{"b/": strconv.Itoa(syscall.S_IFDIR | 0o700), "b/sub/": strconv.Itoa(syscall.S_IFDIR | 0o750)} {
		head, err := b.Head(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if head.Metadata["mode"] != want {
			t.Errorf("%s: mode %q after the rename, want %q", key, head.Metadata["mode"], want)
		}
	}
	if got, err := os.ReadFile(m.path("b/sub/f")); err != nil || string(got) != "f" {
		t.Errorf("b/sub/f = %q, %v", got, err)
	}
}

// chmod 000 shows mode 000, on a file and on a directory (go-fuse showed
// 0644 and 0755 for a mode without permission bits unless told not to),
// also once the attributes are read again.
func TestChmodZeroShowsZero(t *testing.T) {
	b := memstore.New(memstore.Options{})
	m := mountOpts(t, b, Options{MetadataTTL: 100e6, SyncOnClose: true})
	if err := os.WriteFile(m.path("f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"f", "d"} {
		if err := syscall.Chmod(m.path(name), 0); err != nil {
			t.Fatal(err)
		}
		for _, when := range []string{"at once", "after the attribute TTL"} {
			if when != "at once" {
				time.Sleep(150 * time.Millisecond)
			}
			fi, err := os.Lstat(m.path(name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0 {
				t.Errorf("%s after chmod 000, %s: %v", name, when, fi.Mode())
			}
		}
	}
}
