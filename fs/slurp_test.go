package fs

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// slurpListings gives every directory below p the listing listDir gives it
// (the delimited LIST), on buckets of awkward keys (namespace_model_test):
// empty segments, . and .., names too long, markers with data, a file and
// a directory of one name. And no other directory: each one it lists is
// reachable from p by listDir's directories.
func TestSlurpListingsMatchListDir(t *testing.T) {
	for seed := range uint64(24) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			objects := randomKeys(rand.New(rand.NewPCG(seed, 7)))
			b := memstore.New(memstore.Options{MaxListKeys: 4})
			for k, v := range objects {
				put(t, b, k, []byte(v))
			}
			fsys := &FS{bucket: b, layout: RawLayout("")}
			var objs []store.ObjectInfo
			for in := (store.ListInput{}); ; {
				page, err := b.List(t.Context(), in)
				if err != nil {
					t.Fatal(err)
				}
				objs = append(objs, page.Objects...)
				if !page.IsTruncated {
					break
				}
				in.ContinuationToken = page.NextContinuationToken
			}
			for _, top := range []string{"", "a", "a/b"} {
				got, markers := slurpListings(top, fsys.dirKey(top), objs)
				// Walk the delimited listings from top.
				seen := map[string]bool{}
				queue := []string{top}
				for len(queue) > 0 {
					p := queue[0]
					queue = queue[1:]
					want, err := fsys.listDir(t.Context(), fsys.dirKey(p))
					if err != nil {
						t.Fatal(err)
					}
					if p != top || len(want) > 0 {
						seen[p] = true
					}
					if g := got[p]; !maps.EqualFunc(g, want, func(a, b entry) bool { return a.dir == b.dir && a.info.Key == b.info.Key }) {
						t.Errorf("top %q: listing of %q\n got %v\nwant %v", top, p, g, want)
					}
					_, hasMarker := objects[fsys.dirKey(p)]
					if p != "" && markers[p] != hasMarker {
						t.Errorf("top %q: marker of %q = %v, want %v", top, p, markers[p], hasMarker)
					}
					for name, e := range want {
						if e.dir {
							queue = append(queue, childOf(p, name))
						}
					}
				}
				for p := range got {
					if !seen[p] && p != top {
						t.Errorf("top %q: slurp lists %q, which no listing reaches", top, p)
					}
				}
			}
		})
	}
}

// A tree put by another tool (no markers), walked as find does (readdir,
// and a stat of each directory before reading it): one flat LIST instead
// of a LIST and a HEAD per directory, and the walk sees every name. A
// directory that has a marker with a mode still shows that mode.
func TestWalkOfTreeWithoutMarkersListsItFlat(t *testing.T) {
	b := memstore.New(memstore.Options{MaxListKeys: 1000})
	want := map[string]bool{}
	for i := range 20 {
		for j := range 3 {
			for k := range 2 {
				key := fmt.Sprintf("src/d%02d/s%d/f%d", i, j, k)
				put(t, b, key, []byte("x"))
				want[key] = true
			}
		}
	}
	putMeta(t, b, "src/d07/", nil, map[string]string{"mode": "16832"}) // 040700
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute})
	b.ResetCalls()
	got := map[string]bool{}
	var walk func(rel string)
	walk = func(rel string) {
		ents, err := os.ReadDir(m.path(rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p := filepath.Join(rel, e.Name())
			if e.IsDir() {
				if _, err := os.Stat(m.path(p)); err != nil {
					t.Fatal(err)
				}
				walk(p)
			} else {
				got[p] = true
			}
		}
	}
	if _, err := os.Stat(m.path("src")); err != nil {
		t.Fatal(err)
	}
	walk("src")
	if !maps.Equal(got, want) {
		t.Errorf("walk found %d files, want %d", len(got), len(want))
	}
	lists, heads := b.Calls(memstore.OpListObjectsV2), b.Calls(memstore.OpHeadObject)
	t.Logf("walk of 80 directories: %d LIST, %d HEAD", lists, heads)
	// The root's listing, src's listing, the flat LIST of src; HEADs of the
	// marker of src itself and of d07 (the one marker).
	if lists > 4 || heads > 3 {
		t.Errorf("walk of 80 directories without markers cost %d LIST and %d HEAD; want a flat LIST of src, not one LIST and HEAD each", lists, heads)
	}
	st, err := os.Stat(m.path("src/d07"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("src/d07 shows %v, want its marker's 0700", st.Mode())
	}
	if st, err := os.Stat(m.path("src/d01")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("src/d01: %v, %v; want the default 0755", st.Mode(), err)
	}
}

// A subtree larger than the HEADs it would save is not listed flat: its
// directories are stat'ed with HEADs as before, and the walk is right.
func TestSlurpGivesUpOnLargeSubtrees(t *testing.T) {
	b := memstore.New(memstore.Options{MaxListKeys: 10})
	for i := range 8 {
		for k := range 30 {
			put(t, b, fmt.Sprintf("big/d%d/f%02d", i, k), []byte("x"))
		}
	}
	m := mountOpts(t, b, Options{MetadataTTL: time.Minute})
	if got := names(t, m.path("big")); len(got) != 8 {
		t.Fatalf("big = %q", got)
	}
	b.ResetCalls()
	if _, err := os.Stat(m.path("big/d3")); err != nil {
		t.Fatal(err)
	}
	// 8 unknown directories allow 4 pages of 10 keys: 240 keys do not fit.
	if n := b.Calls(memstore.OpListObjectsV2); n != 4 {
		t.Errorf("the flat LIST read %d pages before giving up, want 4", n)
	}
	if n := b.Calls(memstore.OpHeadObject); n != 8 {
		t.Errorf("%d HEADs, want the 8 markers'", n)
	}
	if got := names(t, m.path("big/d3")); len(got) != 30 || !slices.IsSorted(got) || !strings.HasPrefix(got[0], "f") {
		t.Errorf("big/d3 = %q", got)
	}
}

// A walk reaching a directory of many subdirectories lists its subtree
// flat instead of a LIST per sibling, also where every marker is known
// (the tree was made through this mount, so no HEAD is due either).
func TestWalkListsSubtreeFlatInsteadOfEachSibling(t *testing.T) {
	b := memstore.New(memstore.Options{MaxListKeys: 1000})
	ttl := 2 * time.Second
	m := mountOpts(t, b, Options{MetadataTTL: ttl, SyncOnClose: true})
	for i := range 12 {
		for j := range 3 {
			d := m.path(fmt.Sprintf("t/d%02d/s%d", i, j))
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(ttl + 100*time.Millisecond) // the mount's own listings expire
	b.ResetCalls()
	files := 0
	var walk func(rel string)
	walk = func(rel string) {
		ents, err := os.ReadDir(m.path(rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() {
				walk(filepath.Join(rel, e.Name()))
			} else {
				files++
			}
		}
	}
	walk("t")
	if files != 36 {
		t.Errorf("walk found %d files, want 36", files)
	}
	lists, heads := b.Calls(memstore.OpListObjectsV2), b.Calls(memstore.OpHeadObject)
	t.Logf("walk of 49 directories: %d LIST, %d HEAD", lists, heads)
	// t's listing, d00's (read while its siblings' come), the flat LIST of
	// t, and below d00 perhaps one more step's; not one per directory; the
	// one HEAD is the lookup of t itself (the root's listing expired too).
	if lists > 8 || heads > 1 {
		t.Errorf("walk of 49 directories cost %d LIST and %d HEAD; want t's subtree listed flat", lists, heads)
	}
}

// A sibling whose keys have all arrived is handed to the walker before the
// flat listing's last page: the walker does not wait for the whole subtree.
// The tree is made through the mount, so its markers are known and only
// the walk's flat listing of w asks for "w/" once the test arms the gate.
func TestSlurpReleasesSiblingsPageByPage(t *testing.T) {
	var (
		mu     sync.Mutex
		armed  bool
		wPages int
		gate   = make(chan struct{})
		dLists = map[string]int{}
	)
	b := memstore.New(memstore.Options{MaxListKeys: 10, Fault: func(op, key string) error {
		if op != memstore.OpListObjectsV2 {
			return nil
		}
		mu.Lock()
		dLists[key]++
		block := false
		if armed && key == "w/" {
			wPages++
			block = wPages >= 2 // the flat listing's second page and on
		}
		mu.Unlock()
		if block {
			<-gate
		}
		return nil
	}})
	ttl := 2 * time.Second
	m := mountOpts(t, b, Options{MetadataTTL: ttl, SyncOnClose: true})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the unmount (cleanups run last-in first-out)
	for i := range 10 {
		for k := range 2 {
			p := m.path(fmt.Sprintf("w/d%02d/f%d", i, k))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(ttl + 100*time.Millisecond) // the mount's own listings expire
	if got := names(t, m.path("w")); len(got) != 10 {
		t.Fatalf("w = %q", got)
	}
	mu.Lock()
	armed = true
	clear(dLists)
	mu.Unlock()
	if got := names(t, m.path("w/d00")); len(got) != 2 {
		t.Fatalf("w/d00 = %q", got)
	}
	done := make(chan []string)
	go func() {
		ents, _ := os.ReadDir(m.path("w/d01")) // in the flat listing's first page (3 pages of 10: 20 files, 10 markers)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		done <- out
	}()
	select {
	case got := <-done:
		if len(got) != 2 {
			t.Errorf("w/d01 = %q", got)
		}
	case <-time.After(5 * time.Second):
		open()
		<-done
		t.Fatal("readdir of w/d01 waited for the flat listing's last pages")
	}
	open()
	if got := names(t, m.path("w/d09")); len(got) != 2 {
		t.Errorf("w/d09 = %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if dLists["w/d01/"]+dLists["w/d09/"] != 0 || wPages < 2 {
		t.Errorf("flat pages %d; the prefetched directories were listed on their own: %v", wPages, dLists)
	}
}
