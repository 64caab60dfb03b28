package fs

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store/memstore"
)

// Keys that cannot all be file names ("a//b", "." and ".." segments, a
// leading "/", names over 255 bytes, a key that is both a file and a
// prefix, a "dir/" marker with data) are shown or hidden by the rules in
// doc.go. This test builds random buckets of such keys, computes what the
// rules say every directory shows (the reference model below, written
// from the rules, not from the code), and walks the mount: every listing
// must be exactly the model's, every shown file must read its object, and
// nothing outside the bucket is reachable.

// modelEntry is what the model says a name in a directory is.
type modelEntry struct {
	dir  bool
	data string // files: the object's body
}

// modelTree maps a directory path ("" is the root) to its shown names.
type modelTree map[string]map[string]modelEntry

// modelShowable is doc.go's rule for a key segment: not empty, not "." or
// "..", at most 255 bytes, no NUL.
func modelShowable(seg string) bool {
	return seg != "" && seg != "." && seg != ".." && len(seg) <= 255 && !strings.Contains(seg, "\x00")
}

// buildModel applies the rules to the keys: a key names a file at its
// full path when every segment is showable; each proper prefix ending in
// "/" names a directory when its segments are; a directory hides a file of
// the same name; a key ending in "/" is a directory marker, whatever its
// body.
func buildModel(objects map[string]string) modelTree {
	tree := modelTree{"": {}}
	addDir := func(segs []string) {
		for i := range segs {
			parent := strings.Join(segs[:i], "/")
			if tree[parent] == nil {
				tree[parent] = map[string]modelEntry{}
			}
			tree[parent][segs[i]] = modelEntry{dir: true}
			if tree[strings.Join(segs[:i+1], "/")] == nil {
				tree[strings.Join(segs[:i+1], "/")] = map[string]modelEntry{}
			}
		}
	}
	for key := range objects {
		segs := strings.Split(key, "/")
		dirSegs, name := segs[:len(segs)-1], segs[len(segs)-1]
		// Only the showable leading run of directories can be reached.
		reach := 0
		for reach < len(dirSegs) && modelShowable(dirSegs[reach]) {
			reach++
		}
		addDir(dirSegs[:reach])
		if reach == len(dirSegs) && name != "" && modelShowable(name) {
			parent := strings.Join(dirSegs, "/")
			if e, ok := tree[parent][name]; !ok || !e.dir {
				tree[parent][name] = modelEntry{data: objects[key]}
			}
		}
	}
	// A directory hides a file of the same name, whatever the key order.
	for p, names := range tree {
		for name := range names {
			child := name
			if p != "" {
				child = p + "/" + name
			}
			if _, isDir := tree[child]; isDir {
				names[name] = modelEntry{dir: true}
			}
		}
	}
	return tree
}

// randomKeys makes a bucket's worth of awkward keys.
func randomKeys(r *rand.Rand) map[string]string {
	segs := []string{"a", "b", "c d", "é", "", ".", "..", strings.Repeat("x", 255), strings.Repeat("y", 256)}
	objects := map[string]string{}
	for i := range 25 {
		n := 1 + r.IntN(3)
		parts := make([]string, n)
		for j := range parts {
			parts[j] = segs[r.IntN(len(segs))]
		}
		key := strings.Join(parts, "/")
		if r.IntN(5) == 0 {
			key += "/" // a marker, sometimes with data
		}
		if key == "" || key == "/" {
			continue
		}
		body := ""
		if !strings.HasSuffix(key, "/") || r.IntN(2) == 0 {
			body = fmt.Sprintf("object %d", i)
		}
		objects[key] = body
	}
	return objects
}

func TestNamespaceMatchesTheModel(t *testing.T) {
	for seed := range uint64(24) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			objects := randomKeys(rand.New(rand.NewPCG(seed, 99)))
			b := memstore.New(memstore.Options{MaxListKeys: 4})
			for k, v := range objects {
				put(t, b, k, []byte(v))
			}
			model := buildModel(objects)
			m := mountOpts(t, b, Options{MetadataTTL: time.Minute})
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range objects {
					if !yield(k) {
						return
					}
				}
			})
			for p, want := range model {
				ents, err := os.ReadDir(m.path(p))
				if err != nil {
					t.Fatalf("keys %q: readdir %q: %v", keys, p, err)
				}
				got := map[string]modelEntry{}
				for _, e := range ents {
					got[e.Name()] = modelEntry{dir: e.IsDir()}
				}
				var gotNames, wantNames []string
				for n := range got {
					gotNames = append(gotNames, n)
				}
				for n := range want {
					wantNames = append(wantNames, n)
				}
				sort.Strings(gotNames)
				sort.Strings(wantNames)
				if !slices.Equal(gotNames, wantNames) {
					t.Fatalf("keys %q: directory %q shows %q, the rules say %q", keys, p, gotNames, wantNames)
				}
				for name, w := range want {
					full := filepath.Join(m.path(p), name)
					if got[name].dir != w.dir {
						t.Errorf("keys %q: %s: dir %v, the rules say %v", keys, full, got[name].dir, w.dir)
						continue
					}
					if !w.dir {
						data, err := os.ReadFile(full)
						if err != nil || string(data) != w.data {
							t.Errorf("keys %q: read %s = %q, %v; want %q", keys, full, data, err, w.data)
						}
					}
				}
			}
			// A name too long to show cannot be looked up either.
			if _, err := os.Lstat(m.path(strings.Repeat("y", 256))); err == nil {
				t.Errorf("keys %q: a 256-byte name is reachable", keys)
			}
		})
	}
}
