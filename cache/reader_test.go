package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

const testBlock = 64 << 10

func blockCache(t *testing.T, b store.Bucket, size int64) *Cache {
	t.Helper()
	c, err := New(Options{Bucket: b, StagingDir: t.TempDir(), BlockSize: testBlock, CacheSize: size, MaxReadahead: 4 * testBlock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func putObj(t *testing.T, b *memstore.Bucket, key string, data []byte) store.ObjectInfo {
	t.Helper()
	info, err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info.Size = int64(len(data))
	return info
}

func readAll(t *testing.T, r *Reader, chunk int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, chunk)
	for off := int64(0); ; {
		n, err := r.ReadAt(context.Background(), buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestReaderBlockBoundaries(t *testing.T) {
	tests := []struct {
		name        string
		size        int
		off, length int
	}{
		{"zero-length object", 0, 0, 10},
		{"inside one block", 3 * testBlock, 100, 200},
		{"exactly one block", 3 * testBlock, testBlock, testBlock},
		{"across a boundary", 3 * testBlock, testBlock - 10, 20},
		{"across three blocks", 3 * testBlock, testBlock - 1, testBlock + 2},
		{"last partial block", 2*testBlock + 123, 2*testBlock + 100, 100},
		{"ends at the end", 2*testBlock + 123, 2 * testBlock, 123},
		{"past the end", 2*testBlock + 123, 2*testBlock + 123, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := memstore.New(memstore.Options{})
			c := blockCache(t, b, 16*testBlock)
			data := randBytes(tt.size)
			info := putObj(t, b, "k", data)
			r := c.NewReader("k", info.ETag, info.Size)
			buf := make([]byte, tt.length)
			n, err := r.ReadAt(context.Background(), buf, int64(tt.off))
			end := min(tt.off+tt.length, tt.size)
			if tt.off >= tt.size {
				if n != 0 || err != io.EOF {
					t.Fatalf("read past end: %d, %v", n, err)
				}
				return
			}
			if err != nil || !bytes.Equal(buf[:n], data[tt.off:end]) {
				t.Fatalf("read %d bytes at %d: n=%d err=%v", tt.length, tt.off, n, err)
			}
		})
	}
}

// A sequential reader fetches each block once, ahead of itself; a random
// reader fetches only what it touches.
func TestReaderPatterns(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c := blockCache(t, b, 64*testBlock)
	data := randBytes(20 * testBlock)
	info := putObj(t, b, "k", data)
	if got := readAll(t, c.NewReader("k", info.ETag, info.Size), 16<<10); !bytes.Equal(got, data) {
		t.Fatal("sequential read differs")
	}
	c.wg.Wait()
	st := c.Stats()
	if st.BytesFetched != int64(len(data)) {
		t.Errorf("sequential read fetched %d bytes of a %d-byte object: each block must come once", st.BytesFetched, len(data))
	}
	if st.BytesPrefetched < int64(len(data))/2 {
		t.Errorf("only %d bytes were fetched ahead of a sequential reader", st.BytesPrefetched)
	}
	if n := b.Calls(memstore.OpGetObject); n >= 20 {
		t.Errorf("sequential read of 20 blocks sent %d GETs; readahead should fetch runs of blocks per GET", n)
	}

	b2 := memstore.New(memstore.Options{})
	c2 := blockCache(t, b2, 64*testBlock)
	info2 := putObj(t, b2, "k", data)
	r := c2.NewReader("k", info2.ETag, info2.Size)
	for _, blk := range []int64{15, 3, 9, 0, 12} {
		buf := make([]byte, 4096)
		if _, err := r.ReadAt(context.Background(), buf, blk*testBlock+100); err != nil {
			t.Fatal(err)
		}
	}
	c2.wg.Wait()
	if n := b2.Calls(memstore.OpGetObject); n != 5 {
		t.Errorf("5 random reads sent %d GETs, want 5", n)
	}
}

// Two readers missing the same block share one GET.
func TestReaderSingleflight(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	b := memstore.New(memstore.Options{Fault: func(op, key string) error {
		if op == memstore.OpGetObject {
			<-release
		}
		return nil
	}})
	c := blockCache(t, b, 16*testBlock)
	data := randBytes(testBlock)
	info := putObj(t, b, "k", data)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 100)
			if _, err := c.NewReader("k", info.ETag, info.Size).ReadAt(context.Background(), buf, 500); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // both readers are waiting on the block
	once.Do(func() { close(release) })
	wg.Wait()
	if n := b.Calls(memstore.OpGetObject); n != 1 {
		t.Errorf("two readers of one block sent %d GETs, want 1", n)
	}
}

// An object replaced on the server is a new ETag: new blocks, new data.
// A reader still pinned to the old version never mixes the two.
func TestReaderReplacedObject(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c := blockCache(t, b, 16*testBlock)
	v1, v2 := randBytes(3*testBlock), randBytes(3*testBlock)
	info1 := putObj(t, b, "k", v1)
	old := c.NewReader("k", info1.ETag, info1.Size)
	buf := make([]byte, 100)
	if _, err := old.ReadAt(context.Background(), buf, 2*testBlock); err != nil { // random: block 2 only
		t.Fatal(err)
	}
	info2 := putObj(t, b, "k", v2)
	got := readAll(t, c.NewReader("k", info2.ETag, info2.Size), 4096)
	if !bytes.Equal(got, v2) {
		t.Error("the new version reads old data")
	}
	// Block 2 of v1 is cached and still served to its reader; block 0 of
	// v1 is gone from the server, so the pinned reader gets an error
	// (ESTALE in the mount), never v2's bytes.
	if n, err := old.ReadAt(context.Background(), buf, 2*testBlock+10); err != nil || !bytes.Equal(buf[:n], v1[2*testBlock+10:2*testBlock+110]) {
		t.Errorf("cached block of the old version: %v", err)
	}
	if _, err := old.ReadAt(context.Background(), buf, 10); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Errorf("uncached block of a replaced version: %v, want ErrPreconditionFailed", err)
	}
}

// The cache holds at most CacheSize bytes of blocks; the oldest go first.
func TestEviction(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c := blockCache(t, b, 4*testBlock)
	data := randBytes(10 * testBlock)
	info := putObj(t, b, "k", data)
	r := c.NewReader("k", info.ETag, info.Size)
	buf := make([]byte, 10)
	for _, blk := range []int64{2, 4, 6, 8, 1} { // random: no readahead
		r.ReadAt(context.Background(), buf, blk*testBlock)
	}
	st := c.Stats()
	if st.Blocks != 4 || st.Evictions != 1 || st.BytesPrefetched != 0 {
		t.Errorf("after 5 blocks in a 4-block cache: %+v", st)
	}
	before := b.Calls(memstore.OpGetObject)
	r.ReadAt(context.Background(), buf, 8*testBlock) // still cached
	r.ReadAt(context.Background(), buf, 2*testBlock) // evicted first
	if got := b.Calls(memstore.OpGetObject) - before; got != 1 {
		t.Errorf("re-reading a cached and an evicted block sent %d GETs, want 1", got)
	}
}

// Blocks evicted from memory are served from the disk cache, not the store.
func TestEvictedBlocksComeFromDisk(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c, err := New(Options{Bucket: b, StagingDir: t.TempDir(), BlockSize: testBlock, CacheSize: 4 * testBlock,
		DiskCacheDir: t.TempDir(), DiskCacheSize: 64 * testBlock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	data := randBytes(12 * testBlock)
	info := putObj(t, b, "k", data)
	r := c.NewReader("k", info.ETag, info.Size)
	buf := make([]byte, 100)
	for _, blk := range []int64{2, 4, 6, 8, 10, 1, 3} { // random: 7 blocks through a 4-block cache
		r.ReadAt(context.Background(), buf, blk*testBlock)
	}
	deadline := time.Now().Add(3 * time.Second)
	for c.disk.Stats().Blocks < 3 && time.Now().Before(deadline) { // the disk writer is asynchronous
		time.Sleep(10 * time.Millisecond)
	}
	before := b.Calls(memstore.OpGetObject)
	n, err := r.ReadAt(context.Background(), buf, 2*testBlock+7) // evicted first
	if err != nil || !bytes.Equal(buf[:n], data[2*testBlock+7:2*testBlock+107]) {
		t.Fatalf("read of an evicted block: %v", err)
	}
	if got := b.Calls(memstore.OpGetObject) - before; got != 0 {
		t.Errorf("an evicted block cost %d GETs; it is on disk", got)
	}
}

// ReadView gives the same bytes as ReadAt: a view into the block when the
// range lies in one, else a copy into p; io.EOF only at or past the end.
func TestReadView(t *testing.T) {
	b := memstore.New(memstore.Options{})
	data := make([]byte, 3*testBlock+100)
	for i := range data {
		data[i] = byte(i * 7)
	}
	info := putObj(t, b, "k", data)
	c := blockCache(t, b, 16*testBlock)
	tests := []struct {
		name      string
		off, n    int
		wantView  bool
		wantBytes int
	}{
		{"inside a block", 10, 100, true, 100},
		{"a whole block", testBlock, testBlock, true, testBlock},
		{"across two blocks", testBlock - 10, 20, false, 20},
		{"the short last block", 3 * testBlock, 4096, true, 100},
		{"last byte", len(data) - 1, 10, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.NewReader("k", info.ETag, info.Size)
			p := make([]byte, tt.n)
			got, err := r.ReadView(context.Background(), p, int64(tt.off))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data[tt.off:tt.off+tt.wantBytes]) {
				t.Errorf("bytes differ (%d returned)", len(got))
			}
			if view := len(got) > 0 && &got[0] != &p[0]; view != tt.wantView {
				t.Errorf("view = %v, want %v", view, tt.wantView)
			}
		})
	}
	r := c.NewReader("k", info.ETag, info.Size)
	if _, err := r.ReadView(context.Background(), make([]byte, 10), int64(len(data))); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
}

// TestSequentialReadSendsLargeGETs: a sequential reader reading one block
// per call (the kernel's 1 MiB reads), also with reads arriving a little
// out of order (the kernel's parallel readahead), is served by GETs of
// several blocks each once the window is open, not one GET per read.
func TestSequentialReadSendsLargeGETs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shuffled bool
	}{{"in order", false}, {"pairs swapped", true}} {
		t.Run(tc.name, func(t *testing.T) {
			const blocks = 256
			b := memstore.New(memstore.Options{})
			c, err := New(Options{Bucket: b, StagingDir: t.TempDir(), BlockSize: testBlock, CacheSize: 2 * blocks * testBlock,
				MaxReadahead: 32 * testBlock, PrefetchBlocks: 64})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			data := randBytes(blocks * testBlock)
			info := putObj(t, b, "k", data)
			r := c.NewReader("k", info.ETag, info.Size)
			buf := make([]byte, testBlock)
			for i := int64(0); i < blocks; i++ {
				idx := i
				if tc.shuffled && i%2 == 0 && i+1 < blocks {
					idx = i + 1 // 1, 0, 3, 2, ...
				} else if tc.shuffled && i%2 == 1 {
					idx = i - 1
				}
				n, err := r.ReadAt(context.Background(), buf, idx*testBlock)
				if err != nil || n != testBlock || !bytes.Equal(buf, data[idx*testBlock:(idx+1)*testBlock]) {
					t.Fatalf("block %d: %d bytes, %v, or wrong data", idx, n, err)
				}
			}
			c.wg.Wait()
			gets := b.Calls(memstore.OpGetObject)
			// maxChunkBlocks per GET once open: 256/8 = 32, plus the ramp.
			if gets > blocks/maxChunkBlocks+12 {
				t.Errorf("sequential read of %d blocks sent %d GETs; want about %d (runs of %d blocks)", blocks, gets, blocks/maxChunkBlocks, maxChunkBlocks)
			}
			if st := c.Stats(); st.BytesFetched != int64(len(data)) {
				t.Errorf("fetched %d bytes of %d: each block must come once", st.BytesFetched, len(data))
			}
			t.Logf("%d GETs", gets)
		})
	}
}
