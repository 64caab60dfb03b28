package fs

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// A file whose upload is pending shows the mode and mtime it goes up with
// when the kernel asks for it anew (its node forgotten, as after memory
// pressure or a restart): lookups and listings answer from the pending
// upload, not with 0644 and a zero mtime (the differential test's
// write-back seed 78).
func TestPendingFileShowsItsModeAndMtime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("drops the kernel's inode cache: needs root")
	}
	b := memstore.New(memstore.Options{})
	m := mountOpts(t, b, Options{MetadataTTL: 50 * time.Millisecond})
	b.SetFault(memstore.OpPutObject, store.Errorf(store.ErrUnavailable, "PutObject", "f", "held back by the test"), 1000)
	if err := os.WriteFile(m.path("f"), []byte("pending"), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1_500_000_000, 0)
	if err := os.Chtimes(m.path("f"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(m.path("f"), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"lookup", "listing"} {
		// The kernel forgets the inode; ampfs forgets the node.
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // past the listing's TTL
		if how == "listing" {
			if _, err := os.ReadDir(m.dir); err != nil {
				t.Fatal(err)
			}
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(m.path("f"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != syscall.S_IFREG|0o640 || st.Mtim.Sec != mtime.Unix() || st.Size != int64(len("pending")) {
			t.Errorf("%s: mode %o mtime %d size %d; want %o, %d, 7", how, st.Mode, st.Mtim.Sec, st.Size, syscall.S_IFREG|0o640, mtime.Unix())
		}
	}
	if b.Calls(memstore.OpPutObject) == 0 {
		t.Error("the upload was never tried: the file was not pending")
	}
	// Deleting the file cancels the upload, so its retries stop logging
	// (into this test's log) once the test is over.
	if err := os.Remove(m.path("f")); err != nil {
		t.Fatal(err)
	}
}
