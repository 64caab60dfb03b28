package cache

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

func newCache(t *testing.T, b store.Bucket) *Cache {
	t.Helper()
	c, err := New(Options{Bucket: b, StagingDir: t.TempDir(), MultipartThreshold: store.MinPartSize, PartSize: store.MinPartSize, UploadConcurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestPartSize(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		size, min, want int64
	}{
		{0, 8 * mib, 8 * mib},
		{100 * mib, 8 * mib, 8 * mib},
		{1, 1, store.MinPartSize},                     // never below S3's minimum
		{80000 * mib, 5 * mib, 8 * mib},               // 10,000 parts of 8 MiB
		{80000*mib + 1, 5 * mib, 9 * mib},             // one byte more needs bigger parts
		{store.MaxObjectSize, 8 * mib, 525 * mib},     // 5 TiB fits in 10,000 parts
		{store.MaxObjectSize, 1024 * mib, 1024 * mib}, // a larger minimum wins
		{3*mib + 5, 5*mib + 3, 6 * mib},               // rounded up to whole MiB
	}
	for _, tt := range tests {
		got := PartSize(tt.size, tt.min)
		if got != tt.want {
			t.Errorf("PartSize(%d, %d) = %d, want %d", tt.size, tt.min, got, tt.want)
		}
		if tt.size > 0 && (tt.size+got-1)/got > store.MaxParts {
			t.Errorf("PartSize(%d) = %d needs more than %d parts", tt.size, got, store.MaxParts)
		}
	}
}

func stage(t *testing.T, c *Cache, data []byte) *Staged {
	t.Helper()
	s, err := c.NewStaged()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUpload(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		multipart bool
	}{
		{"empty", 0, false},
		{"small", 1000, false},
		{"just under threshold", int(store.MinPartSize) - 1, false},
		{"at threshold", int(store.MinPartSize), true},
		{"several parts", 3*int(store.MinPartSize) + 12345, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := memstore.New(memstore.Options{})
			c := newCache(t, b)
			data := randBytes(tt.size)
			s := stage(t, c, data)
			if !s.Dirty() {
				t.Fatal("new staged file is clean")
			}
			info, err := c.Upload(t.Context(), "k", s, store.PutOptions{ContentType: "text/plain"})
			if err != nil {
				t.Fatal(err)
			}
			if s.Dirty() {
				t.Error("still dirty after upload")
			}
			if info.Size != int64(tt.size) || info.Key != "k" || info.ETag == "" {
				t.Errorf("info = %+v", info)
			}
			got, _, _ := b.Object("k")
			if !bytes.Equal(got, data) {
				t.Fatalf("object differs: %d bytes", len(got))
			}
			if mp := b.Calls(memstore.OpCompleteMultipartUpload) == 1; mp != tt.multipart {
				t.Errorf("multipart = %v, want %v", mp, tt.multipart)
			}
		})
	}
}

func TestFailedMultipartIsAborted(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c := newCache(t, b)
	s := stage(t, c, randBytes(3*int(store.MinPartSize)))
	b.SetFault(memstore.OpUploadPart, store.ErrUnavailable, 1)
	if _, err := c.Upload(t.Context(), "k", s, store.PutOptions{}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("upload: %v, want ErrUnavailable", err)
	}
	if !s.Dirty() {
		t.Error("a failed upload left the file clean")
	}
	if ups := b.Uploads(""); len(ups) != 0 {
		t.Errorf("uploads left behind: %v", ups)
	}
	if b.Calls(memstore.OpAbortMultipartUpload) != 1 {
		t.Errorf("abort calls = %d", b.Calls(memstore.OpAbortMultipartUpload))
	}
}

func TestWriteDuringUploadStaysDirty(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c := newCache(t, b)
	s := stage(t, c, []byte("v1"))
	gen, _ := s.snapshot()
	s.WriteAt([]byte("v2"), 0) // a write lands while v1 is in flight
	if s.markClean(gen) {
		t.Error("markClean accepted a stale generation")
	}
	if !s.Dirty() {
		t.Error("file with a newer write is clean")
	}
}

func TestFill(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c := newCache(t, b)
	data := randBytes(100000)
	info, err := b.Put(t.Context(), "k", bytes.NewReader(data), int64(len(data)), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewStaged()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := c.Fill(t.Context(), s, "k", info.ETag); err != nil {
		t.Fatal(err)
	}
	if s.Dirty() || s.Size() != int64(len(data)) {
		t.Errorf("dirty=%v size=%d", s.Dirty(), s.Size())
	}
	got := make([]byte, len(data))
	if n, err := s.ReadAt(got, 0); n != len(data) || err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back %d, %v", n, err)
	}
	// A changed object is refused rather than mixed.
	s2, _ := c.NewStaged()
	defer s2.Close()
	if err := c.Fill(t.Context(), s2, "k", "stale-etag"); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Errorf("fill with stale etag: %v", err)
	}
}
