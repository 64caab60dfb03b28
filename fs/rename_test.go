package fs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ampfs/ampfs/fs/access"
	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

func TestRenameDirectory(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "a/", nil)
	put(t, b, "a/f", []byte("f"))
	put(t, b, "a/sub/g", []byte("g"))
	put(t, b, "keep", []byte("k"))
	journal := t.TempDir()
	m := mountOpts(t, b, Options{MetadataTTL: 100e6, SyncOnClose: true, RenameJournal: journal})
	if err := os.Symlink("f", m.path("a/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.path("a"), m.path("b")); err != nil {
		t.Fatal(err)
	}
	if got := b.Keys(); !slices.Equal(got, []string{"b/", "b/f", "b/link", "b/sub/g", "keep"}) {
		t.Errorf("keys after rename: %q", got)
	}
	if got, err := os.ReadFile(m.path("b/sub/g")); err != nil || string(got) != "g" {
		t.Errorf("b/sub/g = %q, %v", got, err)
	}
	if got, err := os.Readlink(m.path("b/link")); err != nil || got != "f" {
		t.Errorf("b/link = %q, %v", got, err)
	}
	if ents, _ := os.ReadDir(journal); len(ents) != 0 {
		t.Errorf("journal left %v", ents)
	}
	// Over an empty directory: replaced. Over a non-empty one: ENOTEMPTY.
	if err := os.Mkdir(m.path("empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	// (unix.Rename: os.Rename refuses an existing directory itself.)
	if err := unix.Rename(m.path("b"), m.path("empty")); err != nil {
		t.Errorf("rename over an empty directory: %v", err)
	}
	if err := os.Mkdir(m.path("c"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Rename(m.path("c"), m.path("empty")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rename over a non-empty directory: %v", err)
	}
	if err := os.Rename(m.path("c"), m.path("keep")); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("directory over a file: %v", err)
	}
	if err := unix.Rename(m.path("keep"), m.path("c")); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("file over a directory: %v", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, m.path("c"), unix.AT_FDCWD, m.path("new"), unix.RENAME_NOREPLACE); err != nil {
		t.Errorf("RENAME_NOREPLACE to a new name: %v", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, m.path("new"), unix.AT_FDCWD, m.path("empty"), unix.RENAME_NOREPLACE); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("RENAME_NOREPLACE onto a directory: %v", err)
	}
}

func TestRenameFileOverFile(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "x", []byte("new"))
	put(t, b, "y", []byte("old"))
	m := mount(t, b)
	if err := unix.Renameat2(unix.AT_FDCWD, m.path("x"), unix.AT_FDCWD, m.path("y"), unix.RENAME_NOREPLACE); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("RENAME_NOREPLACE over a file: %v", err)
	}
	if err := os.Rename(m.path("x"), m.path("y")); err != nil {
		t.Fatal(err)
	}
	if got := object(t, b, "y"); string(got) != "new" {
		t.Errorf("y = %q", got)
	}
	if got := b.Keys(); !slices.Equal(got, []string{"y"}) {
		t.Errorf("keys %q", got)
	}
}

// A rename interrupted after some copies (the process died) is finished
// by the next mount from its journal record.
func TestInterruptedDirRenameIsFinished(t *testing.T) {
	b := memstore.New(memstore.Options{})
	for _, k := range []string{"src/", "src/a", "src/b/c", "src/d"} {
		put(t, b, k, []byte(k))
	}
	journal := t.TempDir()
	m := mountOpts(t, b, Options{MetadataTTL: 100e6, RenameJournal: journal})
	// The copy of the third key fails: the rename stops half-done.
	b.SetFault(memstore.OpCopyObject, store.ErrUnavailable, 1)
	if err := os.Rename(m.path("src"), m.path("dst")); err == nil {
		t.Fatal("rename succeeded despite a failed copy")
	}
	if ents, _ := os.ReadDir(journal); len(ents) != 1 {
		t.Fatalf("journal has %d records, want 1", len(ents))
	}
	n, err := m.fsys.FinishRenames(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("FinishRenames = %d, %v", n, err)
	}
	if got := b.Keys(); !slices.Equal(got, []string{"dst/", "dst/a", "dst/b/c", "dst/d"}) {
		t.Errorf("keys after finishing: %q", got)
	}
	if ents, _ := os.ReadDir(filepath.Clean(journal)); len(ents) != 0 {
		t.Errorf("journal left %v", ents)
	}
}

// Between Amplify trees (different owners) a rename is EXDEV: mv(1) then
// copies, and each tree's rules apply.
func TestRenameAcrossTreesIsEXDEV(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "public/d/f", []byte("x"))
	put(t, b, "public/g", []byte("x"))
	a := mountAs(t, b, access.Subject{Authenticated: true, IdentityID: idA})
	for _, p := range []string{"public/d", "public/g"} {
		if err := os.Rename(a.path(p), a.path("private/moved")); !errors.Is(err, syscall.EXDEV) {
			t.Errorf("rename %s to private/: %v, want EXDEV", p, err)
		}
	}
	if err := os.Rename(a.path("public/d"), a.path("public/e")); err != nil {
		t.Errorf("rename within public/: %v", err)
	}
}
