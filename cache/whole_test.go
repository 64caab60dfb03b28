package cache

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// wholePutSync adds data as object (key, etag)'s whole file, as an adopted
// staging file would be, and waits for the writer.
func wholePutSync(t *testing.T, d *DiskCache, key, etag string, data []byte) bool {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "staged-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	ok := d.adopt(f, key, etag, int64(len(data)))
	if !ok {
		f.Close()
	}
	d.do(func() {})
	if ok {
		if _, err := os.Stat(f.Name()); !os.IsNotExist(err) {
			t.Errorf("the adopted staging file is still there (%v)", err)
		}
	}
	return ok
}

func readWhole(t *testing.T, w *WholeFile) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(w, 0, w.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWholeRoundTrip(t *testing.T) {
	d := newDiskForTest(t, t.TempDir(), 4<<20, diskTestBS)
	data := randBytes(200 << 10)
	if !wholePutSync(t, d, "a/b", `"e1"`, data) {
		t.Fatal("not adopted")
	}
	w, ok := d.OpenWhole("a/b", `"e1"`)
	if !ok {
		t.Fatal("OpenWhole missed")
	}
	if got := readWhole(t, w); !bytes.Equal(got, data) {
		t.Errorf("whole file differs")
	}
	// The raw bytes at offset 0, for the kernel.
	raw := make([]byte, 10)
	if _, err := w.f.ReadAt(raw, 0); err != nil || !bytes.Equal(raw, data[:10]) {
		t.Errorf("the file does not start with the data: %v", err)
	}
	w.Close()
	for _, other := range [][2]string{{"a/b", `"e2"`}, {"a/bb", `"e1"`}} {
		if _, ok := d.OpenWhole(other[0], other[1]); ok {
			t.Errorf("OpenWhole(%q, %q) hit", other[0], other[1])
		}
	}
	// A block of the object is read from the whole file.
	got, ok := d.Get(blockKey{"a/b", `"e1"`, 3})
	if !ok || !bytes.Equal(got, data[3*diskTestBS:]) {
		t.Errorf("block 3 from the whole file: %d bytes, %v", len(got), ok)
	}
	if !d.Contains(blockKey{"a/b", `"e1"`, 0}) {
		t.Error("Contains does not see the whole file's blocks")
	}
	if st := d.Stats(); st.WholeHits != 1 || st.WholeAdded != 1 || st.WholeFiles != 1 {
		t.Errorf("stats %+v", st)
	}
	// Too large for a quarter of the cache: not taken.
	if wholePutSync(t, d, "big", `"e"`, make([]byte, 1<<20+1)) {
		t.Error("a whole file over a quarter of the cache was taken")
	}
	diskCheckBound(t, d)
}

// TestWholeBound: whole files and blocks share the byte bound and the LRU;
// an open whole file is not evicted, and is once closed.
func TestWholeBound(t *testing.T) {
	max := 40 * diskOneBlock
	d := newDiskForTest(t, t.TempDir(), max, diskTestBS)
	size := int64(max/4 - 2*diskUnit)
	var objs [][]byte
	for i := range 3 {
		objs = append(objs, randBytes(int(size)))
		if !wholePutSync(t, d, "w", string(rune('a'+i)), objs[i]) {
			t.Fatalf("whole file %d not taken", i)
		}
	}
	pinned, ok := d.OpenWhole("w", "a") // oldest but in use
	if !ok {
		t.Fatal("OpenWhole missed")
	}
	d.do(func() {})
	// Blocks fill the rest and push the unpinned whole files out, oldest
	// first.
	for i := range 60 {
		k := blockKey{"blk", "e", int64(i)}
		diskPutSync(d, k, diskBlockData(k, diskTestBS))
		diskCheckBound(t, d)
	}
	if _, ok := d.OpenWhole("w", "b"); ok {
		t.Error("whole file b (least recently used) survived 60 blocks")
	}
	if got := readWhole(t, pinned); !bytes.Equal(got, objs[0]) {
		t.Error("the open whole file changed")
	}
	if _, err := os.Stat(d.path(pinned.e.name + ".w")); err != nil {
		t.Errorf("the open whole file was deleted: %v", err)
	}
	pinned.Close()
	for i := range 60 {
		k := blockKey{"blk2", "e", int64(i)}
		diskPutSync(d, k, diskBlockData(k, diskTestBS))
	}
	if _, ok := d.OpenWhole("w", "a"); ok {
		t.Error("the closed whole file was never evicted")
	}
	if st := d.Stats(); st.Evictions == 0 {
		t.Errorf("stats %+v", st)
	}
	diskCheckBound(t, d)
}

// TestWholeDamaged: a whole file that a crash tore, or that rotted, is
// never served; its files go.
func TestWholeDamaged(t *testing.T) {
	data := randBytes(300 << 10)
	tests := []struct {
		name   string
		damage func(t *testing.T, data, meta string)
		atLoad bool // found at start-up (else at the first open)
	}{
		{"bit flip", func(t *testing.T, data, meta string) { diskFlip(t, data, 1000) }, false},
		{"zeroed tail", func(t *testing.T, data, meta string) {
			f, err := os.OpenFile(data, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(make([]byte, 4096), 200<<10)
			f.Close()
		}, false},
		{"torn data", func(t *testing.T, data, meta string) { os.Truncate(data, 100<<10) }, true},
		{"no sidecar", func(t *testing.T, data, meta string) { os.Remove(meta) }, true},
		{"no data", func(t *testing.T, data, meta string) { os.Remove(data) }, true},
		{"torn sidecar", func(t *testing.T, data, meta string) {
			b, _ := os.ReadFile(meta)
			os.WriteFile(meta, b[:len(b)-3], 0o600)
		}, true},
		{"sidecar bit flip", func(t *testing.T, data, meta string) { diskFlip(t, meta, 6) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDiskForTest(t, dir, 8<<20, diskTestBS)
			if !wholePutSync(t, d, "k", "e", data) {
				t.Fatal("not adopted")
			}
			name := wholeName(blockKey{"k", "e", wholeIdx})
			d.Close()
			tt.damage(t, d.path(name+".w"), d.path(name+".m"))
			d = newDiskForTest(t, dir, 8<<20, diskTestBS)
			if st := d.Stats(); (st.WholeFiles == 0) != tt.atLoad {
				t.Errorf("after load: %+v", st)
			}
			if w, ok := d.OpenWhole("k", "e"); ok {
				w.Close()
				t.Fatal("a damaged whole file was served")
			}
			if _, ok := d.Get(blockKey{"k", "e", 0}); ok {
				t.Fatal("a block of a damaged whole file was served")
			}
			if st := d.Stats(); !tt.atLoad && st.Corrupt != 1 {
				t.Errorf("stats %+v", st)
			}
			for _, p := range []string{name + ".w", name + ".m"} {
				if _, err := os.Stat(d.path(p)); !os.IsNotExist(err) {
					t.Errorf("%s left behind (%v)", p, err)
				}
			}
			diskCheckBound(t, d)
		})
	}
}

// TestWholeRestart: whole files survive a restart, with the LRU order, and
// are served after their CRC is checked once.
func TestWholeRestart(t *testing.T) {
	dir := t.TempDir()
	d := newDiskForTest(t, dir, 4<<20, diskTestBS)
	data := randBytes(100 << 10)
	wholePutSync(t, d, "k", "e", data)
	k := blockKey{"b", "e", 0}
	diskPutSync(d, k, diskBlockData(k, 1000))
	// A crash's leftovers: temporary files of a whole file being written.
	name := wholeName(blockKey{"x", "y", wholeIdx})
	os.WriteFile(filepath.Join(dir, name[:2], "tmp-w-"+name), []byte("half"), 0o600)
	d.Close()
	d = newDiskForTest(t, dir, 4<<20, diskTestBS)
	if st := d.Stats(); st.Blocks != 1 || st.WholeFiles != 1 {
		t.Errorf("after restart: %+v", st)
	}
	w, ok := d.OpenWhole("k", "e")
	if !ok {
		t.Fatal("whole file lost in the restart")
	}
	if got := readWhole(t, w); !bytes.Equal(got, data) {
		t.Error("whole file differs after the restart")
	}
	w.Close()
	diskCheckBound(t, d)
}

// TestWholeAdoptAndAssemble: over a Cache, an uploaded staging file
// becomes its object's whole file when let go, unless it changed since
// the upload; an object read block by block is assembled into one, after
// which its reads need no GET.
func TestWholeAdoptAndAssemble(t *testing.T) {
	ctx := context.Background()
	b := memstore.New(memstore.Options{})
	c, err := New(Options{Bucket: b, StagingDir: t.TempDir(), DiskCacheDir: t.TempDir(), DiskCacheSize: 64 << 20, BlockSize: 64 << 10, CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	sync := func() { c.disk.do(func() {}) }

	data := randBytes(300 << 10)
	s, err := c.NewStaged()
	if err != nil {
		t.Fatal(err)
	}
	s.WriteAt(data, 0)
	info, err := c.Upload(ctx, "up", s, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	sync()
	w, ok := c.OpenWhole("up", info.ETag, info.Size)
	if !ok {
		t.Fatal("the uploaded staging file was not adopted")
	}
	if !bytes.Equal(readWhole(t, w), data) {
		t.Error("adopted file differs")
	}
	w.Close()
	// A writer's staging file is filled from it, with no GET.
	gets := b.Calls("GetObject")
	sf, _ := c.NewStaged()
	defer sf.Close()
	if err := c.Fill(ctx, sf, "up", info.ETag); err != nil {
		t.Fatal(err)
	}
	filled := make([]byte, len(data)+1)
	if n, _ := sf.ReadAt(filled, 0); n != len(data) || !bytes.Equal(filled[:n], data) || sf.Dirty() {
		t.Errorf("filled from the whole file: %d bytes, dirty %v", n, sf.Dirty())
	}
	if n := b.Calls("GetObject") - gets; n != 0 {
		t.Errorf("%d GETs filling from a whole file", n)
	}

	// Changed after its upload: not the object, not adopted.
	s2, _ := c.NewStaged()
	s2.WriteAt(data, 0)
	info2, err := c.Upload(ctx, "changed", s2, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s2.WriteAt([]byte("x"), 5)
	s2.Close()
	sync()
	if w, ok := c.OpenWhole("changed", info2.ETag, info2.Size); ok {
		w.Close()
		t.Fatal("a staging file changed after its upload was adopted")
	}

	// Read block by block (the memory cache holds 16 of its 20 blocks,
	// the rest went to disk), then assembled.
	obj := randBytes(20 * 64 << 10)
	oi, err := b.Put(ctx, "read", bytes.NewReader(obj), int64(len(obj)), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := c.NewReader("read", oi.ETag, oi.Size)
	got := make([]byte, len(obj))
	if _, err := r.ReadAt(ctx, got, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	c.wg.Wait()
	sync()
	if _, ok := c.OpenWhole("read", oi.ETag, oi.Size); ok {
		t.Fatal("whole file before assembly")
	}
	sync() // OpenWhole queued the assembly
	w, ok = c.OpenWhole("read", oi.ETag, oi.Size)
	if !ok {
		t.Fatal("not assembled")
	}
	if !bytes.Equal(readWhole(t, w), obj) {
		t.Error("assembled file differs")
	}
	w.Close()
	gets = b.Calls("GetObject")
	c.blocks.Purge()
	sync()
	r = c.NewReader("read", oi.ETag, oi.Size)
	if _, err := r.ReadAt(ctx, got, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if !bytes.Equal(got, obj) {
		t.Error("read differs")
	}
	if n := b.Calls("GetObject") - gets; n != 0 {
		t.Errorf("%d GETs reading an object with a whole file", n)
	}
	if st := c.disk.Stats(); st.WholeAdded != 2 {
		t.Errorf("stats %+v", st)
	}
	diskCheckBound(t, c.disk)
}
