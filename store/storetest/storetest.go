// Package storetest is the conformance suite for store.Bucket.
//
// Run exercises every method and every error the contract in store/bucket.go
// promises. It runs against the in-memory fake (store/memstore) and against a
// real S3 server through store/s3, which is what lets the rest of ampfs trust
// the fake. Where real servers are known to differ, the suite accepts only
// what the interface documentation allows, never the fake's choice.
//
// Subtests run in parallel and write only under their own unique key
// prefix, so newBucket may hand every subtest the same (possibly non-empty)
// bucket.
package storetest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
)

// Run runs the conformance suite. newBucket is called once per subtest.
func Run(t *testing.T, newBucket func(t *testing.T) store.Bucket) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"Check", testCheck},
		{"Missing", testMissing},
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"RangedGet", testRangedGet},
		{"EmptyObject", testEmptyObject},
		{"IfMatch", testIfMatch},
		{"Metadata", testMetadata},
		{"Delete", testDelete},
		{"ListDelimiter", testListDelimiter},
		{"ListFlat", testListFlat},
		{"ListPagination", testListPagination},
		{"Copy", testCopy},
		{"Multipart", testMultipart},
		{"MultipartTooSmall", testMultipartTooSmall},
		{"MultipartBadPartList", testMultipartBadPartList},
		{"MultipartAbort", testMultipartAbort},
		{"UploadPartCopy", testUploadPartCopy},
		{"UploadPartCopyInPlace", testUploadPartCopyInPlace},
		{"UploadPartCopyErrors", testUploadPartCopyErrors},
		{"InvalidArguments", testInvalidArguments},
		{"Canceled", testCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &suite{b: newBucket(t), prefix: uniquePrefix(tc.name)}
			tc.fn(t, s)
		})
	}
}

type suite struct {
	b      store.Bucket
	prefix string // ends in "/"
}

func uniquePrefix(name string) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("storetest/%s-%s/", name, hex.EncodeToString(r[:]))
}

func (s *suite) key(name string) string { return s.prefix + name }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// pattern returns n bytes that differ at every offset modulo 251, so an
// off-by-one in a range shows.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i%251) + seed
	}
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func wantErr(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: error %v, want %v", what, err, kind)
	}
	var oe *store.OpError
	if !errors.As(err, &oe) {
		t.Errorf("%s: error %T is not a *store.OpError", what, err)
	}
}

func (s *suite) put(t *testing.T, key string, data []byte, opts store.PutOptions) store.ObjectInfo {
	t.Helper()
	fi, err := s.b.Put(ctx(t), key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
	if fi.Key != key || fi.Size != int64(len(data)) {
		t.Fatalf("Put %s: info %+v, want key %s size %d", key, fi, key, len(data))
	}
	checkETag(t, "Put "+key, fi.ETag)
	return fi
}

func checkETag(t *testing.T, what, etag string) {
	t.Helper()
	if etag == "" || strings.ContainsAny(etag, `" `) {
		t.Fatalf("%s: ETag %q, want non-empty without quotes", what, etag)
	}
}

func (s *suite) get(t *testing.T, key string, off, length int64, opts store.GetOptions) ([]byte, store.ObjectInfo, error) {
	t.Helper()
	rc, fi, err := s.b.Get(ctx(t), key, off, length, opts)
	if err != nil {
		if rc != nil {
			t.Errorf("Get %s: non-nil body with error %v", key, err)
			rc.Close()
		}
		return nil, fi, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get %s: reading body: %v", key, err)
	}
	return data, fi, nil
}

func testCheck(t *testing.T, s *suite) {
	if err := s.b.Check(ctx(t)); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if s.b.Name() == "" {
		t.Errorf("Name() is empty")
	}
}

func testMissing(t *testing.T, s *suite) {
	s.put(t, s.key("dir/file"), []byte("x"), store.PutOptions{})
	for _, key := range []string{s.key("nothing"), s.key("dir"), s.key("dir/"), s.key("dir/fil")} {
		_, err := s.b.Head(ctx(t), key)
		wantErr(t, "Head "+key, err, store.ErrNotFound)
		_, _, err = s.get(t, key, 0, -1, store.GetOptions{})
		wantErr(t, "Get "+key, err, store.ErrNotFound)
		_, _, err = s.get(t, key, 5, 10, store.GetOptions{})
		wantErr(t, "ranged Get "+key, err, store.ErrNotFound)
	}
}

func testPutGet(t *testing.T, s *suite) {
	data := []byte("hello, world\n")
	key := s.key("hello.txt")
	fi := s.put(t, key, data, store.PutOptions{})
	got, gi, err := s.get(t, key, 0, -1, store.GetOptions{})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("Get = %q, want %q", got, data)
	}
	if gi.Key != key || gi.Size != int64(len(data)) || gi.ETag != fi.ETag {
		t.Errorf("Get info %+v, want key %s size %d ETag %s", gi, key, len(data), fi.ETag)
	}
	hi, err := s.b.Head(ctx(t), key)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if hi.Key != key || hi.Size != int64(len(data)) || hi.ETag != fi.ETag {
		t.Errorf("Head info %+v, want key %s size %d ETag %s", hi, key, len(data), fi.ETag)
	}
	if hi.LastModified.IsZero() || time.Since(hi.LastModified) > time.Hour || time.Until(hi.LastModified) > time.Hour {
		t.Errorf("Head LastModified %v, want about now", hi.LastModified)
	}
	if hi.Metadata == nil {
		t.Errorf("Head Metadata is nil, want an empty map")
	}

	// Keys with characters that need escaping in URLs and in XML.
	for _, name := range []string{"a b+c&d=e?f#g%h", "ümlaut/ñ", "semi;colon,comma'quote\"", "~tilde*star(paren)"} {
		k := s.key(name)
		s.put(t, k, []byte(name), store.PutOptions{})
		got, _, err := s.get(t, k, 0, -1, store.GetOptions{})
		if err != nil || string(got) != name {
			t.Errorf("Get %q = %q, %v", k, got, err)
		}
	}
}

func testOverwrite(t *testing.T, s *suite) {
	key := s.key("f")
	a := s.put(t, key, []byte("first version"), store.PutOptions{Metadata: map[string]string{"mode": "1"}})
	b := s.put(t, key, []byte("second"), store.PutOptions{})
	if a.ETag == b.ETag {
		t.Errorf("ETag unchanged by overwrite with other content: %s", a.ETag)
	}
	got, fi, err := s.get(t, key, 0, -1, store.GetOptions{})
	if err != nil || string(got) != "second" || fi.Size != 6 || fi.ETag != b.ETag {
		t.Errorf("Get after overwrite = %q, %+v, %v", got, fi, err)
	}
	hi, err := s.b.Head(ctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(hi.Metadata) != 0 {
		t.Errorf("metadata of the old object survived the overwrite: %v", hi.Metadata)
	}
}

func testRangedGet(t *testing.T, s *suite) {
	const size = 1000
	data := pattern(size, 0)
	key := s.key("ranges")
	fi := s.put(t, key, data, store.PutOptions{})
	tests := []struct {
		name        string
		off, length int64
		want        []byte
		err         error
	}{
		{"whole", 0, -1, data, nil},
		{"whole exact", 0, size, data, nil},
		{"start", 0, 10, data[:10], nil},
		{"middle", 100, 250, data[100:350], nil},
		{"tail to end", 900, -1, data[900:], nil},
		{"tail clipped", 900, 500, data[900:], nil},
		{"last byte", size - 1, 1, data[size-1:], nil},
		{"last byte to end", size - 1, -1, data[size-1:], nil},
		{"zero length", 10, 0, []byte{}, nil},
		{"at end", size, 1, nil, store.ErrInvalidRange},
		{"at end to end", size, -1, nil, store.ErrInvalidRange},
		{"past end", size + 100, 10, nil, store.ErrInvalidRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, gi, err := s.get(t, key, tc.off, tc.length, store.GetOptions{})
			if tc.err != nil {
				wantErr(t, "Get", err, tc.err)
				return
			}
			if err != nil {
				t.Fatalf("Get(%d, %d): %v", tc.off, tc.length, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("Get(%d, %d) = %d bytes, want %d bytes (equal: %v)", tc.off, tc.length, len(got), len(tc.want), bytes.Equal(got, tc.want))
			}
			if gi.Size != size || gi.ETag != fi.ETag || gi.Key != key {
				t.Errorf("Get(%d, %d) info %+v, want the whole object's (size %d, ETag %s)", tc.off, tc.length, gi, size, fi.ETag)
			}
		})
	}
}

func testEmptyObject(t *testing.T, s *suite) {
	key := s.key("empty")
	fi := s.put(t, key, nil, store.PutOptions{})
	for _, r := range [][2]int64{{0, -1}, {0, 10}, {0, 0}, {5, 1}, {5, -1}} {
		got, gi, err := s.get(t, key, r[0], r[1], store.GetOptions{})
		if err != nil {
			t.Errorf("Get(%d, %d) of empty object: %v", r[0], r[1], err)
			continue
		}
		if len(got) != 0 || gi.Size != 0 || gi.ETag != fi.ETag {
			t.Errorf("Get(%d, %d) of empty object = %q, %+v", r[0], r[1], got, gi)
		}
	}
	hi, err := s.b.Head(ctx(t), key)
	if err != nil || hi.Size != 0 {
		t.Errorf("Head of empty object = %+v, %v", hi, err)
	}
}

func testIfMatch(t *testing.T, s *suite) {
	key := s.key("f")
	fi := s.put(t, key, []byte("version one"), store.PutOptions{})
	got, _, err := s.get(t, key, 0, -1, store.GetOptions{IfMatch: fi.ETag})
	if err != nil || string(got) != "version one" {
		t.Fatalf("Get IfMatch current ETag = %q, %v", got, err)
	}
	got, _, err = s.get(t, key, 2, 3, store.GetOptions{IfMatch: fi.ETag})
	if err != nil || string(got) != "rsi" {
		t.Fatalf("ranged Get IfMatch current ETag = %q, %v", got, err)
	}
	s.put(t, key, []byte("version two"), store.PutOptions{})
	_, _, err = s.get(t, key, 0, -1, store.GetOptions{IfMatch: fi.ETag})
	wantErr(t, "Get IfMatch old ETag", err, store.ErrPreconditionFailed)
	_, _, err = s.get(t, key, 2, 3, store.GetOptions{IfMatch: fi.ETag})
	wantErr(t, "ranged Get IfMatch old ETag", err, store.ErrPreconditionFailed)
	_, err = s.b.Copy(ctx(t), key, s.key("g"), store.CopyOptions{IfMatch: fi.ETag})
	wantErr(t, "Copy IfMatch old ETag", err, store.ErrPreconditionFailed)
	if _, err := s.b.Head(ctx(t), s.key("g")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("failed Copy left a destination: Head = %v", err)
	}
}

func testMetadata(t *testing.T, s *suite) {
	key := s.key("meta")
	md := map[string]string{"mode": "33188", "uid": "1000", "gid": "1000", "mtime": "1700000000.25"}
	fi := s.put(t, key, []byte("x"), store.PutOptions{ContentType: "text/plain; charset=utf-8", Metadata: md})
	hi, err := s.b.Head(ctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(hi.Metadata, md) {
		t.Errorf("Head metadata %v, want %v", hi.Metadata, md)
	}
	if hi.ContentType != "text/plain; charset=utf-8" {
		t.Errorf("Head content type %q, want text/plain; charset=utf-8", hi.ContentType)
	}
	if hi.ETag != fi.ETag {
		t.Errorf("Head ETag %s, Put said %s", hi.ETag, fi.ETag)
	}
	_, gi, err := s.get(t, key, 0, -1, store.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(gi.Metadata, md) || gi.ContentType != hi.ContentType {
		t.Errorf("Get info metadata %v type %q, want %v %q", gi.Metadata, gi.ContentType, md, hi.ContentType)
	}

	// Without a content type the store chooses one; it must still be
	// readable.
	s.put(t, s.key("plain"), []byte("x"), store.PutOptions{})
	if _, err := s.b.Head(ctx(t), s.key("plain")); err != nil {
		t.Fatal(err)
	}
}

func testDelete(t *testing.T, s *suite) {
	key := s.key("f")
	s.put(t, key, []byte("x"), store.PutOptions{})
	if err := s.b.Delete(ctx(t), key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.b.Head(ctx(t), key)
	wantErr(t, "Head after Delete", err, store.ErrNotFound)
	if err := s.b.Delete(ctx(t), key); err != nil {
		t.Errorf("Delete of a deleted key: %v, want nil", err)
	}
	if err := s.b.Delete(ctx(t), s.key("never-existed")); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
	// Deleting a marker leaves the objects under it alone.
	s.put(t, s.key("d/"), nil, store.PutOptions{})
	s.put(t, s.key("d/x"), []byte("x"), store.PutOptions{})
	if err := s.b.Delete(ctx(t), s.key("d/")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.b.Head(ctx(t), s.key("d/x")); err != nil {
		t.Errorf("Head d/x after deleting d/: %v", err)
	}
}

// listAll collects every page of a listing, checking the page invariants.
func (s *suite) listAll(t *testing.T, in store.ListInput) (objs []store.ObjectInfo, prefixes []string, pages int) {
	t.Helper()
	for {
		page, err := s.b.List(ctx(t), in)
		if err != nil {
			t.Fatalf("List %+v: %v", in, err)
		}
		pages++
		if in.MaxKeys > 0 && len(page.Objects)+len(page.CommonPrefixes) > in.MaxKeys {
			t.Fatalf("List page has %d objects and %d prefixes, MaxKeys %d", len(page.Objects), len(page.CommonPrefixes), in.MaxKeys)
		}
		if !slices.IsSortedFunc(page.Objects, func(a, b store.ObjectInfo) int { return strings.Compare(a.Key, b.Key) }) {
			t.Errorf("List page objects not in key order")
		}
		if !slices.IsSorted(page.CommonPrefixes) {
			t.Errorf("List page prefixes not in order: %v", page.CommonPrefixes)
		}
		for _, o := range page.Objects {
			if o.Metadata != nil {
				t.Errorf("List object %s has metadata %v, want nil", o.Key, o.Metadata)
			}
			checkETag(t, "List "+o.Key, o.ETag)
		}
		objs = append(objs, page.Objects...)
		prefixes = append(prefixes, page.CommonPrefixes...)
		if !page.IsTruncated {
			if page.NextContinuationToken != "" && len(page.Objects)+len(page.CommonPrefixes) == 0 {
				t.Errorf("List: last page has a continuation token")
			}
			return objs, prefixes, pages
		}
		if page.NextContinuationToken == "" {
			t.Fatalf("List: truncated page without a continuation token")
		}
		if pages > 1000 {
			t.Fatalf("List does not end")
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

func keysOf(objs []store.ObjectInfo) []string {
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys
}

func (s *suite) keys(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = s.key(n)
	}
	return out
}

func testListDelimiter(t *testing.T, s *suite) {
	// a file, a marker with children, an implicit directory, an empty
	// directory (marker only), and a nested one.
	names := []string{"a", "b/", "b/x", "c/y", "c/z/w", "d", "e/", "f!", "f/g"}
	sizes := map[string]int64{}
	etags := map[string]string{}
	for i, n := range names {
		data := pattern(i*3, byte(i))
		if strings.HasSuffix(n, "/") {
			data = nil // markers are empty (versitygw refuses others)
		}
		fi := s.put(t, s.key(n), data, store.PutOptions{})
		sizes[s.key(n)] = int64(len(data))
		etags[s.key(n)] = fi.ETag
	}
	tests := []struct {
		prefix       string
		wantObjs     []string
		wantPrefixes []string
	}{
		{"", s.keys("a", "d", "f!"), s.keys("b/", "c/", "e/", "f/")},
		{"b/", s.keys("b/", "b/x"), nil},
		{"c/", s.keys("c/y"), s.keys("c/z/")},
		{"e/", s.keys("e/"), nil},
		{"nothing/", nil, nil},
		{"f", s.keys("f!"), s.keys("f/")},
	}
	for _, tc := range tests {
		for _, maxKeys := range []int{0, 1, 2} {
			objs, prefixes, _ := s.listAll(t, store.ListInput{Prefix: s.prefix + tc.prefix, Delimiter: "/", MaxKeys: maxKeys})
			if got := keysOf(objs); !slices.Equal(got, tc.wantObjs) {
				t.Errorf("List %q MaxKeys %d: objects %q, want %q", tc.prefix, maxKeys, got, tc.wantObjs)
			}
			if !slices.Equal(prefixes, tc.wantPrefixes) {
				t.Errorf("List %q MaxKeys %d: prefixes %q, want %q", tc.prefix, maxKeys, prefixes, tc.wantPrefixes)
			}
			for _, o := range objs {
				if o.Size != sizes[o.Key] || o.ETag != etags[o.Key] || o.LastModified.IsZero() {
					t.Errorf("List object %+v, want size %d ETag %s", o, sizes[o.Key], etags[o.Key])
				}
			}
		}
	}
}

func testListFlat(t *testing.T, s *suite) {
	names := []string{"a", "b/", "b/x", "c/y/z", "d"}
	for _, n := range names {
		var data []byte
		if !strings.HasSuffix(n, "/") {
			data = []byte(n)
		}
		s.put(t, s.key(n), data, store.PutOptions{})
	}
	objs, prefixes, _ := s.listAll(t, store.ListInput{Prefix: s.prefix})
	if got := keysOf(objs); !slices.Equal(got, s.keys(names...)) || len(prefixes) != 0 {
		t.Errorf("flat List: objects %q prefixes %q, want %q and none", got, prefixes, s.keys(names...))
	}
}

func testListPagination(t *testing.T, s *suite) {
	var want []string
	for i := range 11 {
		n := fmt.Sprintf("k%02d", i)
		s.put(t, s.key(n), []byte(n), store.PutOptions{})
		want = append(want, s.key(n))
	}
	for _, dir := range []string{"p1/", "p2/", "p3/"} {
		s.put(t, s.key(dir+"x"), []byte("x"), store.PutOptions{})
	}
	for _, maxKeys := range []int{1, 2, 5, 14, 1000} {
		objs, _, pages := s.listAll(t, store.ListInput{Prefix: s.prefix + "k", MaxKeys: maxKeys})
		if got := keysOf(objs); !slices.Equal(got, want) {
			t.Errorf("MaxKeys %d: objects %q, want %q", maxKeys, got, want)
		}
		if maxKeys < 11 && pages < (11+maxKeys-1)/maxKeys {
			t.Errorf("MaxKeys %d: %d pages for 11 keys", maxKeys, pages)
		}
		objs, prefixes, _ := s.listAll(t, store.ListInput{Prefix: s.prefix, Delimiter: "/", MaxKeys: maxKeys})
		if got := keysOf(objs); !slices.Equal(got, want) {
			t.Errorf("MaxKeys %d with delimiter: objects %q, want %q", maxKeys, got, want)
		}
		if want := s.keys("p1/", "p2/", "p3/"); !slices.Equal(prefixes, want) {
			t.Errorf("MaxKeys %d with delimiter: prefixes %q, want %q", maxKeys, prefixes, want)
		}
	}
}

func testCopy(t *testing.T, s *suite) {
	src := s.key("src")
	data := pattern(3000, 7)
	md := map[string]string{"mode": "33261", "mtime": "1700000000"}
	si := s.put(t, src, data, store.PutOptions{ContentType: "application/x-test", Metadata: md})

	check := func(key string, wantType string, wantMeta map[string]string) store.ObjectInfo {
		t.Helper()
		got, _, err := s.get(t, key, 0, -1, store.GetOptions{})
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get %s after copy: %d bytes, %v", key, len(got), err)
		}
		hi, err := s.b.Head(ctx(t), key)
		if err != nil {
			t.Fatal(err)
		}
		if hi.ContentType != wantType || !maps.Equal(hi.Metadata, wantMeta) {
			t.Errorf("Head %s: type %q metadata %v, want %q %v", key, hi.ContentType, hi.Metadata, wantType, wantMeta)
		}
		return hi
	}

	// Keep metadata.
	ci, err := s.b.Copy(ctx(t), src, s.key("dst1"), store.CopyOptions{})
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if ci.Key != s.key("dst1") || ci.Size != int64(len(data)) {
		t.Errorf("Copy info %+v, want key %s size %d", ci, s.key("dst1"), len(data))
	}
	checkETag(t, "Copy", ci.ETag)
	if hi := check(s.key("dst1"), "application/x-test", md); hi.ETag != ci.ETag {
		t.Errorf("Head ETag %s, Copy said %s", hi.ETag, ci.ETag)
	}

	// Replace metadata, with IfMatch.
	md2 := map[string]string{"mode": "33188"}
	_, err = s.b.Copy(ctx(t), src, s.key("dst2"), store.CopyOptions{IfMatch: si.ETag, ReplaceMetadata: true, ContentType: "text/plain", Metadata: md2})
	if err != nil {
		t.Fatalf("Copy replacing metadata: %v", err)
	}
	check(s.key("dst2"), "text/plain", md2)
	check(src, "application/x-test", md)

	// Onto itself, replacing metadata: how chmod is done.
	if _, err := s.b.Copy(ctx(t), src, src, store.CopyOptions{ReplaceMetadata: true, ContentType: "application/x-test", Metadata: md2}); err != nil {
		t.Fatalf("Copy onto itself: %v", err)
	}
	check(src, "application/x-test", md2)

	// Overwrites an existing destination.
	s.put(t, s.key("dst3"), []byte("old"), store.PutOptions{})
	if _, err := s.b.Copy(ctx(t), src, s.key("dst3"), store.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	check(s.key("dst3"), "application/x-test", md2)

	_, err = s.b.Copy(ctx(t), s.key("missing"), s.key("dst4"), store.CopyOptions{})
	wantErr(t, "Copy of a missing source", err, store.ErrNotFound)
	_, err = s.b.Head(ctx(t), s.key("dst4"))
	wantErr(t, "Head of a failed copy's destination", err, store.ErrNotFound)
}

func (s *suite) uploadParts(t *testing.T, key, id string, sizes []int) ([]store.Part, []byte) {
	t.Helper()
	var (
		parts []store.Part
		all   []byte
	)
	for i, n := range sizes {
		data := pattern(n, byte(i+1))
		p, err := s.b.UploadPart(ctx(t), key, id, int32(i+1), bytes.NewReader(data), int64(n))
		if err != nil {
			t.Fatalf("UploadPart %d: %v", i+1, err)
		}
		checkETag(t, fmt.Sprintf("UploadPart %d", i+1), p.ETag)
		if p.Number != int32(i+1) || p.Size != int64(n) {
			t.Fatalf("UploadPart %d = %+v, want number %d size %d", i+1, p, i+1, n)
		}
		parts = append(parts, p)
		all = append(all, data...)
	}
	return parts, all
}

func testMultipart(t *testing.T, s *suite) {
	key := s.key("big")
	md := map[string]string{"mode": "33188"}
	id, err := s.b.CreateMultipartUpload(ctx(t), key, store.PutOptions{ContentType: "application/x-big", Metadata: md})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", err)
	}
	if id == "" {
		t.Fatal("empty upload id")
	}
	sizes := []int{int(store.MinPartSize), int(store.MinPartSize), 1234}
	parts, want := s.uploadParts(t, key, id, sizes)
	// Uploading a part again replaces it.
	p2, err := s.b.UploadPart(ctx(t), key, id, 2, bytes.NewReader(want[store.MinPartSize:2*store.MinPartSize]), store.MinPartSize)
	if err != nil {
		t.Fatalf("UploadPart 2 again: %v", err)
	}
	parts[1] = p2
	if _, err := s.b.Head(ctx(t), key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Head before completion: %v, want ErrNotFound", err)
	}
	fi, err := s.b.CompleteMultipartUpload(ctx(t), key, id, parts)
	if err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	if fi.Key != key || fi.Size != int64(len(want)) {
		t.Errorf("Complete info %+v, want key %s size %d", fi, key, len(want))
	}
	checkETag(t, "Complete", fi.ETag)
	got, gi, err := s.get(t, key, 0, -1, store.GetOptions{IfMatch: fi.ETag})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get = %d bytes, want %d bytes, equal %v", len(got), len(want), bytes.Equal(got, want))
	}
	if gi.ETag != fi.ETag || gi.Size != int64(len(want)) {
		t.Errorf("Get info %+v, want ETag %s size %d", gi, fi.ETag, len(want))
	}
	// A range across the part boundary.
	got, _, err = s.get(t, key, store.MinPartSize-10, 20, store.GetOptions{})
	if err != nil || !bytes.Equal(got, want[store.MinPartSize-10:store.MinPartSize+10]) {
		t.Errorf("Get across part boundary: %v", err)
	}
	hi, err := s.b.Head(ctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if hi.ContentType != "application/x-big" || !maps.Equal(hi.Metadata, md) || hi.ETag != fi.ETag {
		t.Errorf("Head %+v, want type application/x-big, metadata %v, ETag %s", hi, md, fi.ETag)
	}
	_, err = s.b.UploadPart(ctx(t), key, id, 4, bytes.NewReader([]byte("x")), 1)
	wantErr(t, "UploadPart after completion", err, store.ErrNoSuchUpload)

	// A single small part is fine: it is also the last.
	key2 := s.key("small")
	id2, err := s.b.CreateMultipartUpload(ctx(t), key2, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts2, want2 := s.uploadParts(t, key2, id2, []int{10})
	if _, err := s.b.CompleteMultipartUpload(ctx(t), key2, id2, parts2); err != nil {
		t.Fatalf("Complete with one small part: %v", err)
	}
	if got, _, err := s.get(t, key2, 0, -1, store.GetOptions{}); err != nil || !bytes.Equal(got, want2) {
		t.Errorf("Get single-part upload = %q, %v", got, err)
	}
}

func testMultipartTooSmall(t *testing.T, s *suite) {
	key := s.key("small-parts")
	id, err := s.b.CreateMultipartUpload(ctx(t), key, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts, _ := s.uploadParts(t, key, id, []int{1024, 1024})
	_, err = s.b.CompleteMultipartUpload(ctx(t), key, id, parts)
	wantErr(t, "Complete with a small non-final part", err, store.ErrInvalidArgument)
	if _, err := s.b.Head(ctx(t), key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Head after a rejected completion: %v, want ErrNotFound", err)
	}
	// The upload is still there and can be aborted.
	if err := s.b.AbortMultipartUpload(ctx(t), key, id); err != nil {
		t.Errorf("Abort after a rejected completion: %v", err)
	}
}

func testMultipartBadPartList(t *testing.T, s *suite) {
	key := s.key("bad-list")
	id, err := s.b.CreateMultipartUpload(ctx(t), key, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.b.AbortMultipartUpload(context.Background(), key, id) })
	parts, _ := s.uploadParts(t, key, id, []int{int(store.MinPartSize), 100})
	badETag := slices.Clone(parts)
	badETag[1].ETag = md5hex([]byte("something else"))
	missing := append(slices.Clone(parts), store.Part{Number: 3, ETag: parts[1].ETag, Size: 100})
	tests := []struct {
		name  string
		parts []store.Part
	}{
		{"descending", []store.Part{parts[1], parts[0]}},
		{"wrong ETag", badETag},
		{"part never uploaded", missing},
		{"no parts", nil},
	}
	for _, tc := range tests {
		_, err := s.b.CompleteMultipartUpload(ctx(t), key, id, tc.parts)
		wantErr(t, "Complete with "+tc.name, err, store.ErrInvalidArgument)
	}
}

func testMultipartAbort(t *testing.T, s *suite) {
	key := s.key("aborted")
	id, err := s.b.CreateMultipartUpload(ctx(t), key, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts, _ := s.uploadParts(t, key, id, []int{100})
	if err := s.b.AbortMultipartUpload(ctx(t), key, id); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	_, err = s.b.UploadPart(ctx(t), key, id, 2, bytes.NewReader([]byte("x")), 1)
	wantErr(t, "UploadPart after Abort", err, store.ErrNoSuchUpload)
	_, err = s.b.CompleteMultipartUpload(ctx(t), key, id, parts)
	wantErr(t, "Complete after Abort", err, store.ErrNoSuchUpload)
	err = s.b.AbortMultipartUpload(ctx(t), key, id)
	wantErr(t, "Abort after Abort", err, store.ErrNoSuchUpload)
	if _, err := s.b.Head(ctx(t), key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Head after Abort: %v, want ErrNotFound", err)
	}

	// Upload ids the store never issued, or issued for another key.
	_, err = s.b.UploadPart(ctx(t), key, "no-such-upload-id", 1, bytes.NewReader([]byte("x")), 1)
	wantErr(t, "UploadPart with an unknown upload id", err, store.ErrNoSuchUpload)
	err = s.b.AbortMultipartUpload(ctx(t), key, "no-such-upload-id")
	wantErr(t, "Abort of an unknown upload id", err, store.ErrNoSuchUpload)
	other, err := s.b.CreateMultipartUpload(ctx(t), s.key("other"), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.b.AbortMultipartUpload(context.Background(), s.key("other"), other) })
	_, err = s.b.UploadPart(ctx(t), key, other, 1, bytes.NewReader([]byte("x")), 1)
	wantErr(t, "UploadPart with another key's upload id", err, store.ErrNoSuchUpload)
}

// testUploadPartCopy assembles an object from ranges of another (whose key
// needs escaping in x-amz-copy-source) and an uploaded part.
func testUploadPartCopy(t *testing.T, s *suite) {
	src := s.key("sp ace+plus/ümlaut&q?.bin")
	data := pattern(2*int(store.MinPartSize)+5000, 11)
	si := s.put(t, src, data, store.PutOptions{})
	key := s.key("assembled")
	id, err := s.b.CreateMultipartUpload(ctx(t), key, store.PutOptions{Metadata: map[string]string{"mode": "33188"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.b.AbortMultipartUpload(context.Background(), key, id) })
	local := pattern(int(store.MinPartSize), 99)
	var (
		parts []store.Part
		want  []byte
	)
	copyPart := func(n int32, off, size int64) {
		t.Helper()
		p, err := s.b.UploadPartCopy(ctx(t), key, id, n, src, si.ETag, off, size)
		if err != nil {
			t.Fatalf("UploadPartCopy %d (%d bytes at %d): %v", n, size, off, err)
		}
		checkETag(t, fmt.Sprintf("UploadPartCopy %d", n), p.ETag)
		if p.Number != n || p.Size != size {
			t.Fatalf("UploadPartCopy %d = %+v, want number %d size %d", n, p, n, size)
		}
		parts = append(parts, p)
		want = append(want, data[off:off+size]...)
	}
	// Not at the start; then an uploaded part; then a copy across the
	// source's end (the last part, shorter than the minimum).
	copyPart(1, 1000, store.MinPartSize+7)
	p, err := s.b.UploadPart(ctx(t), key, id, 2, bytes.NewReader(local), int64(len(local)))
	if err != nil {
		t.Fatalf("UploadPart 2: %v", err)
	}
	parts = append(parts, p)
	want = append(want, local...)
	copyPart(3, int64(len(data))-3000, 3000)
	// Without an ETag precondition, and copying a part again replaces it.
	p3, err := s.b.UploadPartCopy(ctx(t), key, id, 3, src, "", int64(len(data))-3000, 3000)
	if err != nil {
		t.Fatalf("UploadPartCopy without an ETag: %v", err)
	}
	parts[2] = p3
	fi, err := s.b.CompleteMultipartUpload(ctx(t), key, id, parts)
	if err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	got, gi, err := s.get(t, key, 0, -1, store.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get = %d bytes, want %d, equal %v", len(got), len(want), bytes.Equal(got, want))
	}
	if gi.ETag != fi.ETag || gi.Size != int64(len(want)) {
		t.Errorf("Get info %+v, want ETag %s size %d", gi, fi.ETag, len(want))
	}
	if hi, err := s.b.Head(ctx(t), key); err != nil || hi.Metadata["mode"] != "33188" {
		t.Errorf("Head = %+v, %v; want the upload's metadata", hi, err)
	}
	// The source is unchanged.
	if got, gi, err := s.get(t, src, 0, -1, store.GetOptions{}); err != nil || !bytes.Equal(got, data) || gi.ETag != si.ETag {
		t.Errorf("source after the copies: %d bytes, %+v, %v", len(got), gi, err)
	}
}

// testUploadPartCopyInPlace replaces an object by an upload that copies
// its own start: an append that keeps the untouched bytes on the server.
func testUploadPartCopyInPlace(t *testing.T, s *suite) {
	key := s.key("log")
	data := pattern(int(store.MinPartSize)+100, 5)
	si := s.put(t, key, data, store.PutOptions{})
	id, err := s.b.CreateMultipartUpload(ctx(t), key, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.b.AbortMultipartUpload(context.Background(), key, id) })
	p1, err := s.b.UploadPartCopy(ctx(t), key, id, 1, key, si.ETag, 0, int64(len(data)))
	if err != nil {
		t.Fatalf("UploadPartCopy from the upload's own key: %v", err)
	}
	tail := []byte("appended line\n")
	p2, err := s.b.UploadPart(ctx(t), key, id, 2, bytes.NewReader(tail), int64(len(tail)))
	if err != nil {
		t.Fatal(err)
	}
	// Until completion the object is the old one.
	if got, _, err := s.get(t, key, 0, -1, store.GetOptions{IfMatch: si.ETag}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get before completion: %d bytes, %v", len(got), err)
	}
	if _, err := s.b.CompleteMultipartUpload(ctx(t), key, id, []store.Part{p1, p2}); err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	want := append(bytes.Clone(data), tail...)
	if got, _, err := s.get(t, key, 0, -1, store.GetOptions{}); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Get after completion: %d bytes (want %d), %v", len(got), len(want), err)
	}
}

func testUploadPartCopyErrors(t *testing.T, s *suite) {
	src := s.key("src")
	v1 := pattern(10000, 1)
	si := s.put(t, src, v1, store.PutOptions{})
	key := s.key("dst")
	id, err := s.b.CreateMultipartUpload(ctx(t), key, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.b.AbortMultipartUpload(context.Background(), key, id) })

	tests := []struct {
		name     string
		id, src  string
		etag     string
		off, len int64
		want     error
	}{
		{"missing source", id, s.key("missing"), "", 0, 10, store.ErrNotFound},
		{"range past the end", id, src, si.ETag, 9990, 20, store.ErrInvalidRange},
		{"range at the end", id, src, si.ETag, 10000, 1, store.ErrInvalidRange},
		{"unknown upload", "no-such-upload-id", src, si.ETag, 0, 10, store.ErrNoSuchUpload},
		{"part over MaxPartSize", id, src, "", 0, store.MaxPartSize + 1, store.ErrTooLarge},
	}
	for _, tc := range tests {
		_, err := s.b.UploadPartCopy(ctx(t), key, tc.id, 1, tc.src, tc.etag, tc.off, tc.len)
		wantErr(t, "UploadPartCopy with "+tc.name, err, tc.want)
	}
	for _, n := range []int32{0, store.MaxParts + 1} {
		_, err := s.b.UploadPartCopy(ctx(t), key, id, n, src, "", 0, 10)
		wantErr(t, fmt.Sprintf("UploadPartCopy number %d", n), err, store.ErrInvalidArgument)
	}

	// The source changed since its ETag was seen.
	s.put(t, src, pattern(10000, 2), store.PutOptions{})
	_, err = s.b.UploadPartCopy(ctx(t), key, id, 1, src, si.ETag, 0, 10)
	wantErr(t, "UploadPartCopy of a changed source", err, store.ErrPreconditionFailed)

	// Copied parts obey the minimum part size like uploaded ones.
	p1, err := s.b.UploadPartCopy(ctx(t), key, id, 1, src, "", 0, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.b.UploadPartCopy(ctx(t), key, id, 2, src, "", 1024, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.b.CompleteMultipartUpload(ctx(t), key, id, []store.Part{p1, p2})
	wantErr(t, "Complete with a small copied non-final part", err, store.ErrInvalidArgument)
	if _, err := s.b.Head(ctx(t), key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Head after a rejected completion: %v, want ErrNotFound", err)
	}
}

// unreadable fails the test if a store reads a body it should have
// rejected before sending anything.
type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("body read of a request that should have been rejected")
	return 0, io.ErrUnexpectedEOF
}

func (u unreadable) Seek(int64, int) (int64, error) { return 0, nil }

func testInvalidArguments(t *testing.T, s *suite) {
	long := s.prefix + strings.Repeat("x", store.MaxKeyLength)
	_, err := s.b.Put(ctx(t), long, bytes.NewReader([]byte("x")), 1, store.PutOptions{})
	wantErr(t, "Put of a key over MaxKeyLength", err, store.ErrInvalidArgument)

	_, err = s.b.Put(ctx(t), s.key("huge"), unreadable{t}, store.MaxPutSize+1, store.PutOptions{})
	wantErr(t, "Put over MaxPutSize", err, store.ErrTooLarge)

	key := s.key("mpu")
	id, err := s.b.CreateMultipartUpload(ctx(t), key, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.b.AbortMultipartUpload(context.Background(), key, id) })
	for _, n := range []int32{0, -1, store.MaxParts + 1} {
		_, err = s.b.UploadPart(ctx(t), key, id, n, bytes.NewReader([]byte("x")), 1)
		wantErr(t, fmt.Sprintf("UploadPart number %d", n), err, store.ErrInvalidArgument)
	}
	_, err = s.b.UploadPart(ctx(t), key, id, 1, unreadable{t}, store.MaxPartSize+1)
	wantErr(t, "UploadPart over MaxPartSize", err, store.ErrTooLarge)
}

func testCanceled(t *testing.T, s *suite) {
	key := s.key("f")
	s.put(t, key, []byte("x"), store.PutOptions{})
	c, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.b.Head(c, key)
	wantErr(t, "Head with a canceled context", err, store.ErrCanceled)
	_, _, err = s.b.Get(c, key, 0, -1, store.GetOptions{})
	wantErr(t, "Get with a canceled context", err, store.ErrCanceled)
	_, err = s.b.Put(c, key, bytes.NewReader([]byte("y")), 1, store.PutOptions{})
	wantErr(t, "Put with a canceled context", err, store.ErrCanceled)
	_, err = s.b.List(c, store.ListInput{Prefix: s.prefix})
	wantErr(t, "List with a canceled context", err, store.ErrCanceled)

	c, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-c.Done()
	_, err = s.b.Head(c, key)
	wantErr(t, "Head after the deadline", err, store.ErrCanceled)
}
