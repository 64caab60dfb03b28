package memstore_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
	"github.com/ampfs/ampfs/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Bucket {
		return memstore.New(memstore.Options{})
	})
}

func TestConformanceLargePages(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Bucket {
		return memstore.New(memstore.Options{MaxListKeys: store.MaxListKeys})
	})
}

func put(t *testing.T, b store.Bucket, key string, data []byte) store.ObjectInfo {
	t.Helper()
	fi, err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), store.PutOptions{})
	if err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
	return fi
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	b := memstore.New(memstore.Options{})
	put(t, b, "k", []byte("data"))

	b.SetFault(memstore.OpHeadObject, store.ErrUnavailable, 2)
	b.SetFault(memstore.OpHeadObject, errors.New("boom"), 1)
	for i, want := range []error{store.ErrUnavailable, store.ErrUnavailable, store.ErrUnavailable, nil} {
		_, err := b.Head(ctx, "k")
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("Head %d: %v, want %v", i, err, want)
		}
		var oe *store.OpError
		if err != nil && (!errors.As(err, &oe) || oe.Op != memstore.OpHeadObject || oe.Key != "k") {
			t.Errorf("Head %d: error %#v is not an OpError for HeadObject k", i, err)
		}
	}
	if got := b.Calls(memstore.OpHeadObject); got != 4 {
		t.Errorf("Calls(HeadObject) = %d, want 4", got)
	}

	// A faulted Put has no effect.
	b.SetFault(memstore.OpPutObject, store.ErrAccessDenied, 1)
	_, err := b.Put(ctx, "k", bytes.NewReader([]byte("new")), 3, store.PutOptions{})
	if !errors.Is(err, store.ErrAccessDenied) {
		t.Fatalf("Put: %v, want ErrAccessDenied", err)
	}
	if data, _, _ := b.Object("k"); string(data) != "data" {
		t.Errorf("faulted Put changed the object to %q", data)
	}

	// Forever until cleared.
	b.SetFault(memstore.OpDeleteObject, store.ErrUnavailable, -1)
	for range 3 {
		if err := b.Delete(ctx, "k"); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Delete: %v", err)
		}
	}
	b.ClearFaults()
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete after ClearFaults: %v", err)
	}

	// Sentinels already wrapped keep their kind; OpErrors pass through.
	oe := &store.OpError{Op: "GetObject", Key: "x", Code: "SlowDown", Kind: store.ErrUnavailable}
	b.SetFault(memstore.OpGetObject, oe, 1)
	if _, _, err := b.Get(ctx, "x", 0, -1, store.GetOptions{}); err != oe {
		t.Errorf("Get: %v, want the injected OpError itself", err)
	}
	b.SetFault(memstore.OpGetObject, fmt.Errorf("wrapped: %w", store.ErrPreconditionFailed), 1)
	if _, _, err := b.Get(ctx, "x", 0, -1, store.GetOptions{}); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Errorf("Get: %v, want ErrPreconditionFailed", err)
	}
}

func TestFaultHook(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var seen []string
	b := memstore.New(memstore.Options{Fault: func(op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, op+" "+key)
		if op == memstore.OpUploadPart {
			return store.ErrUnavailable
		}
		return nil
	}})
	id, err := b.CreateMultipartUpload(ctx, "big", store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UploadPart(ctx, "big", id, 1, bytes.NewReader([]byte("x")), 1); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("UploadPart: %v, want ErrUnavailable", err)
	}
	if err := b.Check(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"CreateMultipartUpload big", "UploadPart big", "HeadBucket "}
	if !slices.Equal(seen, want) {
		t.Errorf("hook saw %q, want %q", seen, want)
	}
	if got := b.Uploads(""); !slices.Equal(got, []string{id}) {
		t.Errorf("Uploads = %q, want [%s]", got, id)
	}
}

func TestCallsAndMissing(t *testing.T) {
	ctx := context.Background()
	b := memstore.New(memstore.Options{Name: "bkt"})
	if b.Name() != "bkt" {
		t.Errorf("Name = %q", b.Name())
	}
	put(t, b, "a", nil)
	if b.TotalCalls() != 1 || b.Calls(memstore.OpPutObject) != 1 {
		t.Errorf("calls after one Put: total %d put %d", b.TotalCalls(), b.Calls(memstore.OpPutObject))
	}
	b.ResetCalls()
	if b.TotalCalls() != 0 {
		t.Errorf("TotalCalls after ResetCalls = %d", b.TotalCalls())
	}
	b.SetMissing(true)
	if err := b.Check(ctx); !errors.Is(err, store.ErrNoSuchBucket) {
		t.Errorf("Check of a missing bucket: %v", err)
	}
	if _, err := b.Head(ctx, "a"); !errors.Is(err, store.ErrNoSuchBucket) {
		t.Errorf("Head in a missing bucket: %v", err)
	}
	b.SetMissing(false)
	if _, err := b.Head(ctx, "a"); err != nil {
		t.Errorf("Head after SetMissing(false): %v", err)
	}
}

func TestETagsAndClock(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 5, 6, 7, 8, 9, 500, time.UTC)
	b := memstore.New(memstore.Options{Now: func() time.Time { return now }})
	fi := put(t, b, "a", []byte("hello"))
	if fi.ETag != md5hex([]byte("hello")) {
		t.Errorf("ETag %s, want MD5", fi.ETag)
	}
	if !fi.LastModified.Equal(now.Truncate(time.Second)) {
		t.Errorf("LastModified %v, want %v", fi.LastModified, now.Truncate(time.Second))
	}
	hi, _ := b.Head(ctx, "a")
	if hi.ContentType != "binary/octet-stream" {
		t.Errorf("default content type %q", hi.ContentType)
	}

	id, _ := b.CreateMultipartUpload(ctx, "m", store.PutOptions{})
	p1data := bytes.Repeat([]byte("a"), int(store.MinPartSize))
	p1, _ := b.UploadPart(ctx, "m", id, 1, bytes.NewReader(p1data), int64(len(p1data)))
	p2, _ := b.UploadPart(ctx, "m", id, 2, bytes.NewReader([]byte("b")), 1)
	mi, err := b.CompleteMultipartUpload(ctx, "m", id, []store.Part{p1, p2})
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := md5.Sum(p1data), md5.Sum([]byte("b"))
	if want := md5hex(append(s1[:], s2[:]...)) + "-2"; mi.ETag != want {
		t.Errorf("multipart ETag %s, want %s", mi.ETag, want)
	}
}

func TestStrictness(t *testing.T) {
	ctx := context.Background()
	b := memstore.New(memstore.Options{})
	put(t, b, "a", []byte("x"))

	if _, err := b.Put(ctx, "", bytes.NewReader(nil), 0, store.PutOptions{}); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("Put of an empty key: %v", err)
	}
	if _, err := b.Put(ctx, "short", bytes.NewReader([]byte("ab")), 3, store.PutOptions{}); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("Put of a short body: %v", err)
	}
	if _, err := b.Copy(ctx, "a", "a", store.CopyOptions{}); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("Copy onto itself keeping metadata: %v", err)
	}
	if _, _, err := b.Get(ctx, "a", -1, 1, store.GetOptions{}); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("Get at a negative offset: %v", err)
	}
	if _, err := b.List(ctx, store.ListInput{ContinuationToken: "bogus"}); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("List with a bogus token: %v", err)
	}

	// An upload id belongs to its key.
	id, _ := b.CreateMultipartUpload(ctx, "m", store.PutOptions{})
	if _, err := b.UploadPart(ctx, "other", id, 1, bytes.NewReader([]byte("x")), 1); !errors.Is(err, store.ErrNoSuchUpload) {
		t.Errorf("UploadPart with another key's upload id: %v", err)
	}
	if _, err := b.UploadPart(ctx, "m", "no-such-id", 1, bytes.NewReader([]byte("x")), 1); !errors.Is(err, store.ErrNoSuchUpload) {
		t.Errorf("UploadPart with an unknown upload id: %v", err)
	}
	// A part just under the minimum, not last.
	small := bytes.Repeat([]byte("s"), int(store.MinPartSize-1))
	p1, _ := b.UploadPart(ctx, "m", id, 1, bytes.NewReader(small), int64(len(small)))
	p2, _ := b.UploadPart(ctx, "m", id, 2, bytes.NewReader([]byte("x")), 1)
	_, err := b.CompleteMultipartUpload(ctx, "m", id, []store.Part{p1, p2})
	var oe *store.OpError
	if !errors.Is(err, store.ErrInvalidArgument) || !errors.As(err, &oe) || oe.Code != "EntityTooSmall" {
		t.Errorf("Complete with a part of MinPartSize-1: %v, want EntityTooSmall", err)
	}
	// Parts may skip numbers.
	p3, _ := b.UploadPart(ctx, "m", id, 3, bytes.NewReader(append(small, 's')), store.MinPartSize)
	if _, err := b.CompleteMultipartUpload(ctx, "m", id, []store.Part{p3, {Number: 7, ETag: p2.ETag}}); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("Complete with a part never uploaded: %v", err)
	}
	p7, _ := b.UploadPart(ctx, "m", id, 7, bytes.NewReader([]byte("x")), 1)
	if _, err := b.CompleteMultipartUpload(ctx, "m", id, []store.Part{p3, p7}); err != nil {
		t.Errorf("Complete with parts 3 and 7: %v", err)
	}
	if got := b.Uploads(""); len(got) != 0 {
		t.Errorf("uploads left after completion: %q", got)
	}
}

func TestPageSize(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		opt, maxKeys, want int
	}{
		{0, 0, 3},
		{0, 2, 2},
		{0, 10, 3},
		{5, 0, 5},
		{5, 4, 4},
	} {
		b := memstore.New(memstore.Options{MaxListKeys: tc.opt})
		for i := range 10 {
			put(t, b, fmt.Sprintf("k%d", i), nil)
		}
		page, err := b.List(ctx, store.ListInput{MaxKeys: tc.maxKeys})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Objects) != tc.want || !page.IsTruncated || page.NextContinuationToken == "" {
			t.Errorf("MaxListKeys %d MaxKeys %d: %d objects, truncated %v, want %d and truncated",
				tc.opt, tc.maxKeys, len(page.Objects), page.IsTruncated, tc.want)
		}
	}
}

// TestConcurrent is for the race detector.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	b := memstore.New(memstore.Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				key := fmt.Sprintf("d%d/k%d", i%2, j%5)
				put(t, b, key, []byte(key))
				if rc, _, err := b.Get(ctx, key, 0, -1, store.GetOptions{}); err == nil {
					_, _ = io.ReadAll(rc)
					rc.Close()
				}
				_, _ = b.List(ctx, store.ListInput{Prefix: "d0/", Delimiter: "/"})
				_ = b.Delete(ctx, key)
			}
		})
	}
	wg.Wait()
}

// TestUploadPartCopy: a copied part is counted, can be failed like any
// call, and has the ETag S3 gives a part: the MD5 of its bytes.
func TestUploadPartCopy(t *testing.T) {
	ctx := context.Background()
	b := memstore.New(memstore.Options{})
	data := []byte("0123456789")
	fi := put(t, b, "src", data)
	id, err := b.CreateMultipartUpload(ctx, "dst", store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.SetFault(memstore.OpUploadPartCopy, store.ErrUnavailable, 1)
	if _, err := b.UploadPartCopy(ctx, "dst", id, 1, "src", fi.ETag, 2, 5); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("UploadPartCopy with a fault: %v", err)
	}
	p, err := b.UploadPartCopy(ctx, "dst", id, 1, "src", `"`+fi.ETag+`"`, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	if p.ETag != md5hex(data[2:7]) || p.Size != 5 || p.Number != 1 {
		t.Errorf("part %+v, want ETag %s size 5", p, md5hex(data[2:7]))
	}
	if n := b.Calls(memstore.OpUploadPartCopy); n != 2 {
		t.Errorf("%d UploadPartCopy calls counted, want 2", n)
	}
	if _, err := b.CompleteMultipartUpload(ctx, "dst", id, []store.Part{p}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Object("dst"); string(got) != "23456" {
		t.Errorf("object %q, want 23456", got)
	}
}

// TestMaxCopySize: Copy refuses sources over the configured limit, as S3
// does over 5 GiB; UploadPartCopy has no such limit.
func TestMaxCopySize(t *testing.T) {
	ctx := context.Background()
	b := memstore.New(memstore.Options{MaxCopySize: 10})
	fi := put(t, b, "big", []byte("eleven byte"))
	put(t, b, "ok", []byte("ten bytes!"))
	if _, err := b.Copy(ctx, "big", "dst", store.CopyOptions{}); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("Copy over MaxCopySize: %v, want ErrTooLarge", err)
	}
	if _, err := b.Copy(ctx, "ok", "dst", store.CopyOptions{}); err != nil {
		t.Errorf("Copy at MaxCopySize: %v", err)
	}
	id, err := b.CreateMultipartUpload(ctx, "dst", store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UploadPartCopy(ctx, "dst", id, 1, "big", fi.ETag, 0, 11); err != nil {
		t.Errorf("UploadPartCopy of a source over MaxCopySize: %v", err)
	}
}
