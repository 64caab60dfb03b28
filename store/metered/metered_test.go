package metered_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
	"github.com/ampfs/ampfs/store/metered"
	"github.com/ampfs/ampfs/store/storetest"
)

type recorder struct {
	mu    sync.Mutex
	calls map[string]int // "op kind"
	up    int64
	down  int64
}

func (r *recorder) Request(op string, dur time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	kind := "ok"
	if err != nil {
		kind = metered.Kind(err)
	}
	r.calls[op+" "+kind]++
}

func (r *recorder) Bytes(op string, n int64, upload bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if upload {
		r.up += n
	} else {
		r.down += n
	}
}

// TestConformance: the decorator changes nothing the contract says.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Bucket {
		return metered.New(memstore.New(memstore.Options{Name: "b"}), &recorder{}, nil)
	})
}

func TestCounts(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	b := metered.New(memstore.New(memstore.Options{Name: "b"}), rec, nil)
	for i := range 3 {
		if _, err := b.Put(ctx, fmt.Sprintf("k%d", i), bytes.NewReader([]byte("hello")), 5, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	body, _, err := b.Get(ctx, "k0", 0, -1, store.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		t.Fatal(err)
	}
	body.Close()
	if _, err := b.Head(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Head missing: %v", err)
	}
	want := map[string]int{"PutObject ok": 3, "GetObject ok": 1, "HeadObject not_found": 1}
	for k, n := range want {
		if rec.calls[k] != n {
			t.Errorf("%s: %d calls, want %d (all: %v)", k, rec.calls[k], n, rec.calls)
		}
	}
	if rec.up != 15 || rec.down != 5 {
		t.Errorf("bytes up %d down %d, want 15 and 5", rec.up, rec.down)
	}
}

func TestKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{store.Errorf(store.ErrAccessDenied, "GetObject", "k", "x"), "access_denied"},
		{&store.OpError{Op: "PutObject", Kind: store.ErrUnavailable}, "unavailable"},
		{fmt.Errorf("wrapped: %w", store.ErrNotFound), "not_found"},
		{context.DeadlineExceeded, "canceled"},
		{errors.New("boom"), "other"},
	} {
		if got := metered.Kind(c.err); got != c.want {
			t.Errorf("Kind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestUploadPartCopy: a copied part is a request like any other, with no
// body bytes (the data stays on the server).
func TestUploadPartCopy(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	b := metered.New(memstore.New(memstore.Options{Name: "b"}), rec, nil)
	if _, err := b.Put(ctx, "src", bytes.NewReader([]byte("0123456789")), 10, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	id, err := b.CreateMultipartUpload(ctx, "dst", store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UploadPartCopy(ctx, "dst", id, 1, "src", "", 2, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UploadPartCopy(ctx, "dst", id, 1, "src", "not-the-etag", 2, 5); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("UploadPartCopy with a wrong ETag: %v", err)
	}
	want := map[string]int{"UploadPartCopy ok": 1, "UploadPartCopy precondition_failed": 1}
	for k, n := range want {
		if rec.calls[k] != n {
			t.Errorf("%s: %d calls, want %d (all: %v)", k, rec.calls[k], n, rec.calls)
		}
	}
	if rec.up != 10 {
		t.Errorf("bytes up %d, want the Put's 10 only", rec.up)
	}
}
