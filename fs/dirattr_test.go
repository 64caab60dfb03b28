package fs

import (
	"os"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store/memstore"
)

// tar sets the mode and the times of every directory it made: on a marker
// this mount wrote (empty), each is one PUT of the marker, not a copy of
// it onto itself (a HEAD and a COPY against S3). A marker with a body
// (another tool's) is still copied, so the body stays.
func TestDirSetattrPutsAnEmptyMarker(t *testing.T) {
	b := memstore.New(memstore.Options{})
	putMeta(t, b, "other/", []byte("body"), map[string]string{"mode": "16877"})
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute})
	if err := os.Mkdir(m.path("d"), 0o700); err != nil {
		t.Fatal(err)
	}
	b.ResetCalls()
	mtime := time.Unix(1_600_000_000, 0)
	if err := os.Chmod(m.path("d"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(m.path("d"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if c, p := b.Calls(memstore.OpCopyObject), b.Calls(memstore.OpPutObject); c != 0 || p != 2 {
		t.Errorf("chmod and utimes of a new directory: %d copies and %d PUTs, want 0 and 2", c, p)
	}
	md := metaOfKey(t, b, "d/")
	if md["mode"] != "16872" || md["mtime"] != "1600000000" { // 040750
		t.Errorf("marker metadata = %v", md)
	}
	if err := os.Chmod(m.path("other"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got := string(object(t, b, "other/")); got != "body" {
		t.Errorf("a marker's body after chmod: %q", got)
	}
	if md := metaOfKey(t, b, "other/"); md["mode"] != "16832" {
		t.Errorf("other/ metadata = %v", md)
	}
}
