package cache

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const diskTestBS = 64 << 10 // block size of most disk cache tests

// diskBlockData is the content of block k, so any Get can be checked.
func diskBlockData(k blockKey, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8(sha256.Sum256(fmt.Appendf(nil, "%q %q %d", k.key, k.etag, k.idx))).Read(b)
	return b
}

// diskOneBlock is the bytes a full block of diskTestBS with a short key is counted
// for.
var diskOneBlock = diskSize(diskHdrLen + 16 + diskTestBS)

// newDiskForTest opens a disk cache with a clock that ticks a millisecond per
// call, so recency never ties.
func newDiskForTest(t *testing.T, dir string, maxBytes, blockSize int64) *DiskCache {
	t.Helper()
	d, err := NewDiskCache(dir, maxBytes, blockSize, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Millisecond)
		return clock
	}
	t.Cleanup(d.Close)
	return d
}

// diskPutSync puts a block and waits until the writer has handled it.
func diskPutSync(d *DiskCache, k blockKey, data []byte) {
	d.Put(k, data)
	d.do(func() {})
}

// walk returns the bytes of the files in the block subdirectories of dir
// (not the lock file or other files at the top) as the cache counts them,
// and how many there are.
func diskWalk(dir string) (counted int64, files int, err error) {
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() && filepath.Dir(p) != dir {
			st, err := de.Info()
			if err != nil {
				return err
			}
			counted += diskSize(st.Size())
			files++
		}
		return nil
	})
	return counted, files, err
}

// diskCheckBound asserts, with the writer idle, that the files under the
// cache's dir fit maxBytes and match its accounting.
func diskCheckBound(t *testing.T, d *DiskCache) {
	t.Helper()
	var (
		counted int64
		files   int
		err     error
		st      DiskStats
	)
	d.do(func() { // on the writer, so no write is under way
		counted, files, err = diskWalk(d.dir)
		st = d.Stats()
	})
	if err != nil {
		t.Fatal(err)
	}
	if counted > d.maxBytes {
		t.Errorf("%d bytes on disk, limit %d", counted, d.maxBytes)
	}
	if counted != st.Bytes || files != st.Blocks+2*st.WholeFiles {
		t.Errorf("on disk %d bytes in %d files, accounted %d bytes in %d blocks and %d whole files", counted, files, st.Bytes, st.Blocks, st.WholeFiles)
	}
}

func TestDiskRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		k    blockKey
		n    int
	}{
		{"full block", blockKey{"a/b.bin", `"etag1"`, 0}, diskTestBS},
		{"short last block", blockKey{"a/b.bin", `"etag1"`, 7}, 1234},
		{"empty block", blockKey{"empty", `"e"`, 0}, 0},
		{"key escaping the dir", blockKey{"../../../etc/passwd", `"x"`, 1}, 100},
		{"absolute key with NUL", blockKey{"/tmp/\x00/é", `"x"`, 2}, 100},
		{"long key", blockKey{strings.Repeat("k", 1024), `"x"`, 3}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDiskForTest(t, dir, 1<<20, diskTestBS)
			want := diskBlockData(tt.k, tt.n)
			diskPutSync(d, tt.k, want)
			got, ok := d.Get(tt.k)
			if !ok || !bytes.Equal(got, want) {
				t.Fatalf("Get = %d bytes, %v; want %d bytes", len(got), ok, len(want))
			}
			for _, other := range []blockKey{
				{tt.k.key, `"other"`, tt.k.idx},
				{tt.k.key, tt.k.etag, tt.k.idx + 1},
				{tt.k.key + "x", tt.k.etag, tt.k.idx},
			} {
				if _, ok := d.Get(other); ok {
					t.Errorf("Get(%q, %q, %d) hit", other.key, other.etag, other.idx)
				}
			}
			if st := d.Stats(); st.Hits != 1 || st.Misses != 3 || st.Blocks != 1 {
				t.Errorf("stats %+v", st)
			}
			// Every file stays inside dir, in a hashed name.
			if _, files, err := diskWalk(dir); err != nil || files != 1 {
				t.Errorf("%d files under dir (%v), want 1", files, err)
			}
			diskCheckBound(t, d)
		})
	}
}

func TestDiskSizeBound(t *testing.T) {
	tests := []struct {
		name      string
		maxBytes  int64
		blockSize int64
		puts      int
		sizes     func(i int) int // block i's length
	}{
		{"full blocks, 3 fit", 3*diskOneBlock + 100, diskTestBS, 40, func(int) int { return diskTestBS }},
		{"exactly one block", diskSize(diskHdrLen + diskMaxKey + diskMaxETag + diskTestBS), diskTestBS, 10, func(int) int { return diskTestBS }},
		{"mixed sizes", 5 * diskOneBlock, diskTestBS, 100, func(i int) int { return (i * 7919) % (diskTestBS + 1) }},
		{"tiny blocks, many files", 64 << 10, 4096, 200, func(i int) int { return 1 + i%4096 }},
		{"1 MiB blocks", 4 << 20, 1 << 20, 12, func(int) int { return 1 << 20 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDiskForTest(t, t.TempDir(), tt.maxBytes, tt.blockSize)
			for i := range tt.puts {
				k := blockKey{fmt.Sprintf("obj%d", i%17), `"e"`, int64(i)}
				d.Put(k, diskBlockData(k, tt.sizes(i)))
				diskCheckBound(t, d)
			}
			if st := d.Stats(); st.Evictions == 0 || st.Bytes > tt.maxBytes {
				t.Errorf("stats %+v: want evictions, bytes <= %d", st, tt.maxBytes)
			}
		})
	}
}

func TestDiskLRUOrder(t *testing.T) {
	d := newDiskForTest(t, t.TempDir(), 3*diskOneBlock, diskTestBS)
	k := func(i int) blockKey { return blockKey{"obj", `"e"`, int64(i)} }
	for i := range 3 {
		diskPutSync(d, k(i), diskBlockData(k(i), diskTestBS))
	}
	if _, ok := d.Get(k(0)); !ok { // 0 becomes the most recent: 1 is next out
		t.Fatal("block 0 missing")
	}
	diskPutSync(d, k(1), diskBlockData(k(1), diskTestBS)) // already there: only touches 1
	diskPutSync(d, k(3), diskBlockData(k(3), diskTestBS)) // evicts 2
	diskPutSync(d, k(4), diskBlockData(k(4), diskTestBS)) // evicts 0
	for i, want := range []bool{false, true, false, true, true} {
		if got := d.Contains(k(i)); got != want {
			t.Errorf("Contains(block %d) = %v, want %v", i, got, want)
		}
	}
	if st := d.Stats(); st.Evictions != 2 {
		t.Errorf("evictions = %d, want 2", st.Evictions)
	}
	diskCheckBound(t, d)
}

func TestDiskRestart(t *testing.T) {
	dir := t.TempDir()
	k := func(i int) blockKey { return blockKey{"obj", `"e"`, int64(i)} }
	d := newDiskForTest(t, dir, 4*diskOneBlock, diskTestBS)
	for i := range 4 {
		diskPutSync(d, k(i), diskBlockData(k(i), diskTestBS))
	}
	d.Get(k(0)) // most recent: 0, 3, 2, 1
	d.Close()

	// Leftovers a crash or an older version could leave.
	torn := filepath.Join(dir, "ab", "tmp-123")
	junk := filepath.Join(dir, "cd", "notablock")
	other := diskName(diskTestBS*2, k(9)) // a block of another block size
	otherPath := filepath.Join(dir, other[:2], other)
	forged := diskName(diskTestBS, k(8)) // the header of block 1 under block 8's name
	forgedPath := filepath.Join(dir, forged[:2], forged)
	b1, err := os.ReadFile(filepath.Join(dir, diskName(diskTestBS, k(1))[:2], diskName(diskTestBS, k(1))))
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range map[string][]byte{
		torn:       []byte("half a blo"),
		junk:       []byte("x"),
		otherPath:  append(appendHeader(nil, diskTestBS*2, k(9), []byte("data")), "data"...),
		forgedPath: b1,
	} {
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	userFile := filepath.Join(dir, "README") // top level: not ours, left alone
	if err := os.WriteFile(userFile, []byte("hi"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Reopen with room for two blocks: the two most recent stay.
	d2 := newDiskForTest(t, dir, 2*diskOneBlock, diskTestBS)
	for i, want := range []bool{true, false, false, true} {
		got, ok := d2.Get(k(i))
		if ok != want || (ok && !bytes.Equal(got, diskBlockData(k(i), diskTestBS))) {
			t.Errorf("after restart Get(block %d) = %v, want %v", i, ok, want)
		}
	}
	for _, p := range []string{torn, junk, otherPath, forgedPath} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not removed at start-up (%v)", p, err)
		}
	}
	if _, err := os.Stat(userFile); err != nil {
		t.Errorf("file outside the block dirs touched: %v", err)
	}
	diskCheckBound(t, d2)
	// The bound holds for new writes after a restart.
	for i := 10; i < 15; i++ {
		d2.Put(k(i), diskBlockData(k(i), diskTestBS))
		diskCheckBound(t, d2)
	}
}

func TestDiskCorrupt(t *testing.T) {
	k0, k1 := blockKey{"obj", `"e"`, 0}, blockKey{"obj", `"e"`, 1}
	tests := []struct {
		name   string
		damage func(t *testing.T, p0, p1 string)
	}{
		{"flipped data byte", func(t *testing.T, p0, _ string) { diskFlip(t, p0, -1) }},
		{"flipped key byte", func(t *testing.T, p0, _ string) { diskFlip(t, p0, diskHdrLen) }},
		{"flipped magic", func(t *testing.T, p0, _ string) { diskFlip(t, p0, 0) }},
		{"truncated", func(t *testing.T, p0, _ string) {
			if err := os.Truncate(p0, 100); err != nil {
				t.Fatal(err)
			}
		}},
		{"empty", func(t *testing.T, p0, _ string) {
			if err := os.Truncate(p0, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"another block's file", func(t *testing.T, p0, p1 string) {
			b, err := os.ReadFile(p1)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p0, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDiskForTest(t, t.TempDir(), 1<<20, diskTestBS)
			diskPutSync(d, k0, diskBlockData(k0, diskTestBS))
			diskPutSync(d, k1, diskBlockData(k1, diskTestBS))
			p0, p1 := d.path(diskName(diskTestBS, k0)), d.path(diskName(diskTestBS, k1))
			tt.damage(t, p0, p1)
			if _, ok := d.Get(k0); ok {
				t.Fatal("damaged block served")
			}
			if _, err := os.Stat(p0); !os.IsNotExist(err) {
				t.Errorf("damaged file not removed (%v)", err)
			}
			if st := d.Stats(); st.Corrupt != 1 || st.Blocks != 1 || st.Bytes != diskOneBlock {
				t.Errorf("stats %+v", st)
			}
			if got, ok := d.Get(k1); !ok || !bytes.Equal(got, diskBlockData(k1, diskTestBS)) {
				t.Error("intact block lost")
			}
			diskPutSync(d, k0, diskBlockData(k0, diskTestBS)) // cached again
			if got, ok := d.Get(k0); !ok || !bytes.Equal(got, diskBlockData(k0, diskTestBS)) {
				t.Error("block not cached again")
			}
			diskCheckBound(t, d)
		})
	}
}

// diskFlip inverts byte off of the file at p; a negative off counts from the end.
func diskFlip(t *testing.T, p string, off int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDiskConcurrent(t *testing.T) {
	d := newDiskForTest(t, t.TempDir(), 8*diskOneBlock, diskTestBS)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	boundErr := make(chan string, 1)
	go func() { // the accounting never exceeds the limit, at any moment
		for {
			select {
			case <-stop:
				return
			default:
			}
			if st := d.Stats(); st.Bytes > d.maxBytes {
				select {
				case boundErr <- fmt.Sprintf("accounted %d bytes, limit %d", st.Bytes, d.maxBytes):
				default:
				}
			}
			time.Sleep(10 * time.Microsecond)
		}
	}()
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				k := blockKey{fmt.Sprintf("obj%d", r.IntN(3)), `"e"`, int64(r.IntN(8))}
				n := diskTestBS - int(k.idx)*100
				if r.IntN(2) == 0 {
					d.Put(k, diskBlockData(k, n))
				} else if got, ok := d.Get(k); ok && !bytes.Equal(got, diskBlockData(k, n)) {
					t.Errorf("Get(%v) returned wrong data", k)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	select {
	case msg := <-boundErr:
		t.Error(msg)
	default:
	}
	diskCheckBound(t, d)
	st := d.Stats()
	if st.Corrupt != 0 || st.Hits == 0 || st.Evictions == 0 {
		t.Errorf("stats %+v: want hits and evictions, nothing corrupt", st)
	}
	t.Logf("stats %+v", st)
}

func TestDiskPutNeverBlocks(t *testing.T) {
	d := newDiskForTest(t, t.TempDir(), 1<<30, diskTestBS)
	// Stall the writer; Puts beyond the queue's capacity are dropped.
	stalled, release := make(chan struct{}), make(chan struct{})
	d.queue <- diskPut{fn: func() { close(stalled); <-release }}
	<-stalled
	extra := 10
	start := time.Now()
	for i := range cap(d.queue) + extra {
		k := blockKey{"obj", `"e"`, int64(i)}
		d.Put(k, diskBlockData(k, 100))
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Puts against a stalled writer took %v", el)
	}
	close(release)
	diskCheckBound(t, d)
	if st := d.Stats(); st.Dropped != int64(extra) || st.Blocks != cap(d.queue) {
		t.Errorf("stats %+v; want %d dropped, %d blocks", st, extra, cap(d.queue))
	}
	d.Close()
	d.Put(blockKey{"late", `"e"`, 0}, []byte("x")) // after Close: no panic, nothing
}

// TestDiskPutFast checks that a 1 MiB block reaches the disk quickly: no
// fsync per block (a cache may lose everything on a crash). The bound is
// loose, to catch a pathological write path, not to benchmark.
func TestDiskPutFast(t *testing.T) {
	const bs, n = 1 << 20, 16
	d := newDiskForTest(t, t.TempDir(), 64<<20, bs)
	data := diskBlockData(blockKey{"x", "y", 0}, bs)
	start := time.Now()
	for i := range n {
		putStart := time.Now()
		d.Put(blockKey{"big", `"e"`, int64(i)}, data)
		if el := time.Since(putStart); el > 100*time.Millisecond {
			t.Errorf("Put %d returned after %v", i, el)
		}
	}
	d.do(func() {})
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("writing %d MiB took %v", n, el)
	} else {
		t.Logf("%d x 1 MiB written in %v", n, el)
	}
	if st := d.Stats(); st.Blocks+int(st.Dropped) != n {
		t.Errorf("stats %+v", st)
	}
}

func TestDiskDirLocked(t *testing.T) {
	dir := t.TempDir()
	d := newDiskForTest(t, dir, 1<<20, diskTestBS)
	if _, err := NewDiskCache(dir, 1<<20, diskTestBS, zerolog.Nop()); err == nil {
		t.Fatal("second cache on the same dir opened")
	}
	d.Close()
	d2, err := NewDiskCache(dir, 1<<20, diskTestBS, zerolog.Nop())
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	d2.Close()
}

func TestDiskBadOptions(t *testing.T) {
	tests := []struct {
		name                string
		maxBytes, blockSize int64
	}{
		{"smaller than a block", diskTestBS, diskTestBS},
		{"zero block size", 1 << 20, 0},
		{"huge block size", 1 << 40, 1 << 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d, err := NewDiskCache(t.TempDir(), tt.maxBytes, tt.blockSize, zerolog.Nop()); err == nil {
				d.Close()
				t.Fatal("no error")
			}
		})
	}
}
