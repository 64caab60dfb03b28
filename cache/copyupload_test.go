package cache

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// countingBucket counts the part bytes sent (UploadPart, Put) and copied
// on the server (UploadPartCopy).
type countingBucket struct {
	*memstore.Bucket
	mu           sync.Mutex
	sent, copied int64
}

func (b *countingBucket) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	info, err := b.Bucket.Put(ctx, key, body, size, opts)
	if err == nil {
		b.add(&b.sent, size)
	}
	return info, err
}

func (b *countingBucket) UploadPart(ctx context.Context, key, id string, n int32, body io.ReadSeeker, size int64) (store.Part, error) {
	p, err := b.Bucket.UploadPart(ctx, key, id, n, body, size)
	if err == nil {
		b.add(&b.sent, size)
	}
	return p, err
}

func (b *countingBucket) UploadPartCopy(ctx context.Context, key, id string, n int32, src, etag string, off, size int64) (store.Part, error) {
	p, err := b.Bucket.UploadPartCopy(ctx, key, id, n, src, etag, off, size)
	if err == nil {
		b.add(&b.copied, size)
	}
	return p, err
}

func (b *countingBucket) add(v *int64, n int64) {
	b.mu.Lock()
	*v += n
	b.mu.Unlock()
}

func (b *countingBucket) reset() (sent, copied int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sent, copied = b.sent, b.copied
	b.sent, b.copied = 0, 0
	b.ResetCalls()
	return sent, copied
}

// filled puts data as key and returns a Staged filled from it, with the
// cache's defaults (8 MiB threshold and parts).
func filled(t *testing.T, key string, data []byte) (*countingBucket, *Cache, *Staged) {
	t.Helper()
	b := &countingBucket{Bucket: memstore.New(memstore.Options{})}
	c, err := New(Options{Bucket: b, StagingDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	info, err := b.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewStaged()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := c.Fill(t.Context(), s, key, info.ETag); err != nil {
		t.Fatal(err)
	}
	b.reset()
	return b, c, s
}

// local applies a change to the staged file and to want, its expected
// contents.
type local struct {
	t    *testing.T
	s    *Staged
	want []byte
}

func (l *local) write(off int64, p []byte) {
	l.t.Helper()
	if _, err := l.s.WriteAt(p, off); err != nil {
		l.t.Fatal(err)
	}
	if end := off + int64(len(p)); end > int64(len(l.want)) {
		l.want = append(l.want, make([]byte, end-int64(len(l.want)))...)
	}
	copy(l.want[off:], p)
}

func (l *local) end() int64 { return int64(len(l.want)) }

func (l *local) truncate(size int64) {
	l.t.Helper()
	if err := l.s.Truncate(size); err != nil {
		l.t.Fatal(err)
	}
	if size < int64(len(l.want)) {
		l.want = l.want[:size]
	} else {
		l.want = append(l.want, make([]byte, size-int64(len(l.want)))...)
	}
}

func checkObject(t *testing.T, b *countingBucket, key string, want []byte) {
	t.Helper()
	got, _, ok := b.Object(key)
	if !ok {
		t.Fatalf("no object %s", key)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("object %s: %d bytes, want %d; first difference at %d", key, len(got), len(want), i)
	}
}

// TestUploadCopiesUntouched: an upload of a file filled from an object
// sends what changed and copies the rest on the server, and the object is
// right to the byte; when the source is gone or changed, it sends all.
func TestUploadCopiesUntouched(t *testing.T) {
	const size = 40 * mib
	tests := []struct {
		name string
		size int64  // of the object; 0 means 40 MiB (size)
		dst  string // upload key; "" is the source's
		// change edits the staged file; between runs after it, before the
		// upload (the server side changing meanwhile).
		change       func(l *local)
		between      func(t *testing.T, b *countingBucket)
		sent, copied int64
		copyCalls    int // UploadPartCopy requests, failed ones included
	}{
		{name: "append 1 KiB to 64 MiB", size: 64 * mib, change: func(l *local) { l.write(l.end(), randBytes(1024)) },
			sent: 1024, copied: 64 * mib, copyCalls: 1},
		{name: "overwrite in the middle", change: func(l *local) { l.write(20*mib, randBytes(4096)) },
			sent: store.MinPartSize, copied: size - store.MinPartSize, copyCalls: 2},
		{name: "overwrite the first byte", change: func(l *local) { l.write(0, []byte{^l.want[0]}) },
			sent: store.MinPartSize, copied: size - store.MinPartSize, copyCalls: 1},
		{name: "truncate then regrow", change: func(l *local) { l.truncate(20 * mib); l.truncate(size) },
			sent: size - 20*mib, copied: 20 * mib, copyCalls: 1},
		{name: "truncate, regrow, write in the regrown range", change: func(l *local) {
			l.truncate(20 * mib)
			l.write(30*mib, randBytes(100))
			l.truncate(size + 5)
		}, sent: size + 5 - 20*mib, copied: 20 * mib, copyCalls: 1},
		{name: "shrink", change: func(l *local) { l.truncate(size - 3*mib) },
			sent: 0, copied: size - 3*mib, copyCalls: 1},
		{name: "unchanged (a metadata change)", change: func(l *local) { l.s.MarkDirty() },
			sent: 0, copied: size, copyCalls: 1},
		{name: "writes in too many places", change: func(l *local) {
			for i := range int64(maxSpans + 1) {
				l.write(i*4096, []byte{1})
			}
		}, sent: size, copied: 0, copyCalls: 0},
		{name: "to another key (a rename, the source kept)", dst: "renamed",
			change: func(l *local) { l.write(l.end(), []byte("tail")) }, sent: 4, copied: size, copyCalls: 1},
		{name: "source replaced on the server", change: func(l *local) { l.write(l.end(), randBytes(1024)) },
			between: func(t *testing.T, b *countingBucket) {
				other := randBytes(size)
				if _, err := b.Bucket.Put(t.Context(), "k", bytes.NewReader(other), size, store.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}, sent: size + 1024, copied: 0, copyCalls: 1},
		{name: "source deleted (a rename deletes the old key)", dst: "renamed",
			change: func(l *local) { l.write(l.end(), []byte("x")) },
			between: func(t *testing.T, b *countingBucket) {
				if err := b.Delete(t.Context(), "k"); err != nil {
					t.Fatal(err)
				}
			}, sent: size + 1, copied: 0, copyCalls: 1},
		{name: "copy fails for another reason", change: func(l *local) { l.write(l.end(), []byte("tail")) },
			between: func(t *testing.T, b *countingBucket) {
				b.SetFault(memstore.OpUploadPartCopy, store.ErrUnavailable, 1)
			}, sent: size + 4, copied: 0, copyCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.size
			if n == 0 {
				n = size
			}
			data := randBytes(int(n))
			b, c, s := filled(t, "k", data)
			l := &local{t: t, s: s, want: bytes.Clone(data)}
			tt.change(l)
			if tt.between != nil {
				tt.between(t, b)
			}
			dst := tt.dst
			if dst == "" {
				dst = "k"
			}
			b.reset()
			if _, err := c.Upload(t.Context(), dst, s, store.PutOptions{}); err != nil {
				t.Fatalf("upload: %v", err)
			}
			calls := b.Calls(memstore.OpUploadPartCopy)
			sent, copied := b.reset()
			checkObject(t, b, dst, l.want)
			if sent != tt.sent || copied != tt.copied || calls != tt.copyCalls {
				t.Errorf("sent %d bytes, copied %d in %d requests; want %d, %d in %d", sent, copied, calls, tt.sent, tt.copied, tt.copyCalls)
			}
			if s.Dirty() {
				t.Error("dirty after the upload")
			}
			if ups := b.Uploads(""); len(ups) != 0 {
				t.Errorf("uploads left behind: %v", ups)
			}

			// The object just stored is the source of the next upload.
			l.write(int64(len(l.want)), []byte("and one more line\n"))
			if _, err := c.Upload(t.Context(), dst, s, store.PutOptions{}); err != nil {
				t.Fatalf("second upload: %v", err)
			}
			sent, copied = b.reset()
			checkObject(t, b, dst, l.want)
			if want := int64(len(l.want)) - 18; sent != 18 || copied != want {
				t.Errorf("second upload sent %d bytes and copied %d, want 18 and %d", sent, copied, want)
			}
		})
	}
}

// TestUploadSmallFileIsPut: below the multipart threshold a filled file
// goes up whole in one PUT, copying nothing.
func TestUploadSmallFileIsPut(t *testing.T) {
	data := randBytes(mib)
	b, c, s := filled(t, "k", data)
	l := &local{t: t, s: s, want: bytes.Clone(data)}
	l.write(mib, []byte("tail"))
	if _, err := c.Upload(t.Context(), "k", s, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	checkObject(t, b, "k", l.want)
	if n := b.Calls(memstore.OpUploadPartCopy); n != 0 {
		t.Errorf("%d copies", n)
	}
	if sent, _ := b.reset(); sent != mib+4 {
		t.Errorf("sent %d", sent)
	}
}

// TestUploadWriteWhileUploading: writes that land while an upload is in
// flight stay dirty, and the next upload sends them (and only them, with
// the 5 MiB a part needs) on top of the object the first one stored.
func TestUploadWriteWhileUploading(t *testing.T) {
	const size = 64 * mib
	data := randBytes(size)
	b, c, s := filled(t, "k", data)
	l := &local{t: t, s: s, want: bytes.Clone(data)}
	l.write(size, []byte("appended"))
	var once sync.Once
	b.Bucket = memstore.New(memstore.Options{Fault: func(op, key string) error {
		if op == memstore.OpCompleteMultipartUpload {
			// The parts are up: this write is not in them.
			once.Do(func() { l.write(10*mib, []byte("late write")) })
		}
		return nil
	}})
	if _, err := b.Bucket.Put(t.Context(), "k", bytes.NewReader(data), size, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	b.reset()
	if _, err := c.Upload(t.Context(), "k", s, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if !s.Dirty() {
		t.Fatal("clean after a write during its upload")
	}
	stale := bytes.Clone(l.want)
	copy(stale[10*mib:], data[10*mib:10*mib+10])
	checkObject(t, b, "k", stale)
	b.reset()
	if _, err := c.Upload(t.Context(), "k", s, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	checkObject(t, b, "k", l.want)
	if sent, copied := b.reset(); sent != store.MinPartSize || copied != int64(len(l.want))-store.MinPartSize {
		t.Errorf("second upload sent %d bytes and copied %d, want %d and the rest", sent, copied, store.MinPartSize)
	}
	if s.Dirty() {
		t.Error("dirty after the second upload")
	}
}
