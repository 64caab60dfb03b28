package fs

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store/memstore"
)

// Creating files in a directory whose listing has expired (cp -r and tar
// take longer than the TTL) costs one LIST per TTL, not a HEAD and a LIST
// per new name: the lookup of the first new name reads the small listing
// again, and it answers the others.
func TestExpiredListingIsReadAgainForNewNames(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	b := memstore.New(memstore.Options{MaxListKeys: 1000})
	// The kernel keeps entries for the TTL in real time: a minute, so it
	// never looks "d" up again under load; the listing's TTL runs on the
	// fake clock.
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute, Now: clock.Now})
	if err := os.Mkdir(m.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := os.WriteFile(m.path(fmt.Sprintf("d/f%d", i)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 5)
	clock.Advance(2 * time.Minute) // the listing mkdir started has expired
	b.ResetCalls()
	write(5, 15)
	if heads, lists := b.Calls(memstore.OpHeadObject), b.Calls(memstore.OpListObjectsV2); heads != 0 || lists != 1 {
		t.Errorf("10 creates after the TTL sent %d HEADs and %d LISTs, want 0 and 1", heads, lists)
	}
	// The renewed listing is as fresh as any: another client's object is
	// seen once it expires, and names this mount wrote stay visible.
	put(t, b, "d/theirs", []byte("t"))
	clock.Advance(2 * time.Minute)
	if _, err := os.Stat(m.path("d/theirs")); err != nil {
		t.Errorf("another client's file after the TTL: %v", err)
	}
	for i := range 15 {
		if _, err := os.Stat(m.path(fmt.Sprintf("d/f%d", i))); err != nil {
			t.Errorf("own file f%d: %v", i, err)
		}
	}
	if _, err := os.Stat(m.path("d/nothing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of a missing name: %v", err)
	}
}

// A directory too large to read again for one lookup is asked about the
// name alone.
func TestExpiredLargeListingStatsTheName(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	b := memstore.New(memstore.Options{MaxListKeys: 1000})
	for i := range relistMaxEntries + 1 {
		put(t, b, fmt.Sprintf("big/f%05d", i), []byte("x"))
	}
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute, Now: clock.Now})
	names(t, m.path("big"))
	// The listing's TTL starts at RELEASEDIR, which the kernel sends
	// after close(2) has returned.
	time.Sleep(100 * time.Millisecond)
	clock.Advance(2 * time.Minute)
	b.ResetCalls()
	if _, err := os.Stat(m.path("big/new")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat big/new: %v", err)
	}
	if heads, lists := b.Calls(memstore.OpHeadObject), b.Calls(memstore.OpListObjectsV2); heads != 1 || lists != 1 {
		t.Errorf("lookup in a large expired listing: %d HEADs and %d LISTs, want 1 and 1", heads, lists)
	}
}
