package fs

import (
	"os"
	"syscall"
	"testing"

	"github.com/ampfs/ampfs/store/memstore"
)

// Regressions found by running go-fuse's posixtest suite against a real
// mount (integration/posixtest_test.go), and by reading the code it runs.

// A file deleted, or replaced by a rename, while open shows no links to
// fstat through the descriptor still open (posixtest's NlinkZero and
// FstatDeleted); before, it still showed 1.
func TestUnlinkedOpenFileHasNoLinks(t *testing.T) {
	m := mount(t, memstore.New(memstore.Options{}))
	for _, name := range []string{"gone", "replaced", "new"} {
		if err := os.WriteFile(m.path(name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nlink := func(f *os.File) uint64 {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		return st.Nlink
	}
	gone, err := os.Open(m.path("gone"))
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	replaced, err := os.Open(m.path("replaced"))
	if err != nil {
		t.Fatal(err)
	}
	defer replaced.Close()
	if n := nlink(gone); n != 1 {
		t.Errorf("an open file has %d links, want 1", n)
	}
	if err := os.Remove(m.path("gone")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.path("new"), m.path("replaced")); err != nil {
		t.Fatal(err)
	}
	if n := nlink(gone); n != 0 {
		t.Errorf("a deleted file open still has %d links, want 0", n)
	}
	if n := nlink(replaced); n != 0 {
		t.Errorf("a file replaced by a rename, open still, has %d links, want 0", n)
	}
	if fi, err := os.Stat(m.path("replaced")); err != nil || fi.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Errorf("the file renamed over it: %v", err)
	}
}
