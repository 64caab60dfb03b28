package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store/memstore"
)

// listCalls counts LIST requests (memstore pages hold 3 keys by default;
// the tests below keep directories small enough for one page).
func listCalls(b *memstore.Bucket) int { return b.Calls(memstore.OpListObjectsV2) }

// Reading one subdirectory of a listed directory fetches its siblings'
// listings in the background; reading them then costs no request, and the
// walk sees every name exactly once.
func TestWalkPrefetchesSiblingListings(t *testing.T) {
	b := memstore.New(memstore.Options{MaxListKeys: 1000})
	const dirs = 6
	for i := range dirs {
		put(t, b, fmt.Sprintf("w/d%d/f", i), []byte("x"))
	}
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute})
	if got := names(t, m.path("w")); len(got) != dirs {
		t.Fatalf("w = %q", got)
	}
	b.ResetCalls()
	if got := names(t, m.path("w/d0")); !slices.Equal(got, []string{"f"}) {
		t.Fatalf("w/d0 = %q", got)
	}
	// d0's own listing, then the prefetch of d1..d5.
	deadline := time.Now().Add(10 * time.Second)
	for listCalls(b) < dirs && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := listCalls(b); n != dirs {
		t.Fatalf("after reading w/d0: %d LISTs, want %d (its own and its %d siblings')", n, dirs, dirs-1)
	}
	for i := 1; i < dirs; i++ {
		if got := names(t, m.path(fmt.Sprintf("w/d%d", i))); !slices.Equal(got, []string{"f"}) {
			t.Errorf("w/d%d = %q", i, got)
		}
	}
	if n := listCalls(b); n != dirs {
		t.Errorf("reading the prefetched directories sent %d more LISTs", n-dirs)
	}
}

// A change made through the mount in a directory whose listing was
// prefetched is seen: the prefetched listing is dropped.
func TestPrefetchedListingDroppedByChange(t *testing.T) {
	b := memstore.New(memstore.Options{MaxListKeys: 1000})
	for i := range 3 {
		put(t, b, fmt.Sprintf("w/d%d/f", i), []byte("x"))
	}
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute})
	names(t, m.path("w"))
	names(t, m.path("w/d0"))
	deadline := time.Now().Add(10 * time.Second)
	for listCalls(b) < 4 && time.Now().Before(deadline) { // w, d0, d1, d2
		time.Sleep(5 * time.Millisecond)
	}
	if err := os.WriteFile(m.path("w/d1/new"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.path("w/d2/f")); err != nil {
		t.Fatal(err)
	}
	if got := names(t, m.path("w/d1")); !slices.Equal(got, []string{"f", "new"}) {
		t.Errorf("w/d1 after a create = %q", got)
	}
	if got := names(t, m.path("w/d2")); len(got) != 0 {
		t.Errorf("w/d2 after a remove = %q", got)
	}
	// And a walk of the whole tree matches the server.
	var seen []string
	filepath.WalkDir(m.path("w"), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(m.path(""), p)
			seen = append(seen, rel)
		}
		return err
	})
	if want := []string{"w/d0/f", "w/d1/f", "w/d1/new"}; !slices.Equal(seen, want) {
		t.Errorf("walk = %q, want %q", seen, want)
	}
}

// A prefetched listing also reads its subdirectories' marker metadata:
// the walker's stat of w/dN/sub, before it reads it, sends no HEAD.
func TestPrefetchReadsSubdirMarkers(t *testing.T) {
	b := memstore.New(memstore.Options{MaxListKeys: 1000})
	const dirs = 4
	for i := range dirs {
		putMeta(t, b, fmt.Sprintf("w/d%d/sub/", i), nil, map[string]string{"mode": "16832"}) // 040700
		put(t, b, fmt.Sprintf("w/d%d/sub/f", i), []byte("x"))
	}
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute})
	names(t, m.path("w"))
	names(t, m.path("w/d0"))
	// d0's listing, then d1..d3's, each followed by its sub/ marker's HEAD.
	deadline := time.Now().Add(10 * time.Second)
	for (listCalls(b) < dirs+1 || b.Calls(memstore.OpHeadObject) < dirs-1) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for i := 1; i < dirs; i++ {
		names(t, m.path(fmt.Sprintf("w/d%d", i)))
		b.ResetCalls()
		st := lstat(t, m.path(fmt.Sprintf("w/d%d/sub", i)))
		if st.Mode != syscall.S_IFDIR|0o700 {
			t.Errorf("w/d%d/sub: mode %o", i, st.Mode)
		}
		if n := b.Calls(memstore.OpHeadObject); n != 0 {
			t.Errorf("stat of w/d%d/sub sent %d HEADs; the prefetch should have read its marker", i, n)
		}
	}
}
