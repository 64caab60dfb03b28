package cache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

func wbCache(t *testing.T, b store.Bucket, dir string) *Cache {
	t.Helper()
	c, err := New(Options{Bucket: b, StagingDir: filepath.Join(dir, "staging"), JournalDir: filepath.Join(dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func commit(t *testing.T, c *Cache, key string, data []byte) (*Staged, uint64) {
	t.Helper()
	s, err := c.NewStaged()
	if err != nil {
		t.Fatal(err)
	}
	s.WriteAt(data, 0)
	gen, err := c.Commit(context.Background(), key, s, store.PutOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, gen
}

func TestCommitUploadsAndWaits(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c := wbCache(t, b, t.TempDir())
	s, gen := commit(t, c, "k", []byte("hello"))
	defer s.Close()
	if err := c.Wait(context.Background(), "k", gen); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := b.Object("k"); !ok || string(got) != "hello" {
		t.Errorf("object = %q", got)
	}
	if len(c.Status()) != 0 {
		t.Errorf("status after upload: %+v", c.Status())
	}
	if recs, _ := c.readJournal(); len(recs) != 0 {
		t.Errorf("journal after upload: %+v", recs)
	}
}

// A failed upload is reported to Wait (fsync), kept, retried, and done.
func TestFailedUploadRetried(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c := wbCache(t, b, t.TempDir())
	b.SetFault(memstore.OpPutObject, store.ErrUnavailable, 1)
	s, gen := commit(t, c, "k", []byte("x"))
	defer s.Close()
	if err := c.Wait(context.Background(), "k", gen); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("wait on a failing upload: %v", err)
	}
	if st := c.Status(); len(st) != 1 || st[0].State != Failed || st[0].Attempts != 1 {
		t.Fatalf("status = %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := b.Object("k"); !ok {
		t.Error("not uploaded after the retry")
	}
}

// Unlink cancels a pending upload: the object never appears, and the
// journal forgets it.
func TestCancel(t *testing.T) {
	release := make(chan struct{})
	b := memstore.New(memstore.Options{Fault: func(op, key string) error {
		if op == memstore.OpPutObject && key == "blocked" {
			<-release
		}
		return nil
	}})
	c := wbCache(t, b, t.TempDir())
	s1, _ := commit(t, c, "blocked", []byte("keeps a worker busy"))
	defer s1.Close()
	time.Sleep(20 * time.Millisecond)
	c.opts.UploadWorkers = 1
	s2, _ := commit(t, c, "doomed", []byte("x"))
	c.Cancel("doomed")
	s2.Close()
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a canceled upload in flight deletes what it stored
	if _, _, ok := b.Object("doomed"); ok {
		t.Error("a canceled upload reached the server")
	}
	if recs, _ := c.readJournal(); len(recs) != 0 {
		t.Errorf("journal after cancel: %+v", recs)
	}
}

// After a crash (the cache is dropped without draining), a new cache on
// the same directories finds the journal and uploads; a torn temporary
// record and a damaged one are ignored.
func TestRecover(t *testing.T) {
	dir := t.TempDir()
	down := memstore.New(memstore.Options{})
	down.SetFault(memstore.OpPutObject, store.ErrUnavailable, -1)
	c1, err := New(Options{Bucket: down, StagingDir: filepath.Join(dir, "staging"), JournalDir: filepath.Join(dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, c1, "a", []byte("alpha"))
	s, err := c1.NewStaged() // written but never committed: not resumed
	if err != nil {
		t.Fatal(err)
	}
	s.WriteAt([]byte("lost"), 0)
	c1.Close() // the crash: nothing uploaded
	os.WriteFile(filepath.Join(dir, "journal", ".record-123.tmp"), []byte(`{"key":"torn`), 0o600)
	os.WriteFile(filepath.Join(dir, "journal", "0123456789abcdef0123456789abcdef.json"), []byte(`{"key":`), 0o600)

	up := memstore.New(memstore.Options{})
	c2 := wbCache(t, up, dir)
	n, err := c2.Recover()
	if err != nil || n != 1 {
		t.Fatalf("recover: %d, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c2.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := up.Object("a"); !ok || string(got) != "alpha" {
		t.Errorf("recovered object = %q", got)
	}
	// The worker lets go of a staging file just after the upload is done
	// (Drain returns on the latter): give it a moment.
	deadline := time.Now().Add(2 * time.Second)
	for {
		ents, _ := os.ReadDir(filepath.Join(dir, "staging"))
		if len(ents) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("staging files left: %v", ents)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if recs, _ := c2.readJournal(); len(recs) != 0 {
		t.Errorf("journal records left: %v", recs)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "journal")); len(ents) != 2 { // log, streams/
		t.Errorf("journal files left: %v", ents)
	}
}

// A file written front to back goes up while it is written: by the time it
// is committed, most parts are on the server, and the object is exact.
func TestStreamingUpload(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c, err := New(Options{Bucket: b, StagingDir: filepath.Join(t.TempDir(), "s"), PartSize: store.MinPartSize, UploadConcurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s, err := c.NewStaged()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.Stream(s, "big", store.PutOptions{})
	data := randBytes(4*int(store.MinPartSize) + 1234)
	for off := 0; off < len(data); off += 128 << 10 {
		s.WriteAt(data[off:min(off+128<<10, len(data))], int64(off))
	}
	time.Sleep(100 * time.Millisecond)
	if n := b.Calls(memstore.OpUploadPart); n < 3 {
		t.Errorf("%d parts uploaded while writing 4 parts' worth", n)
	}
	gen, err := c.Commit(context.Background(), "big", s, store.PutOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), "big", gen); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Object("big"); !bytes.Equal(got, data) {
		t.Fatalf("streamed object differs (%d bytes)", len(got))
	}
	if n := b.Calls(memstore.OpCreateMultipartUpload); n != 1 {
		t.Errorf("%d multipart uploads; the stream's should have been completed", n)
	}
	// A writer going back breaks the stream: the file is uploaded whole.
	s2, _ := c.NewStaged()
	defer s2.Close()
	c.Stream(s2, "rewritten", store.PutOptions{})
	s2.WriteAt(data, 0)
	s2.WriteAt([]byte("CHANGED"), 10)
	gen, _ = c.Commit(context.Background(), "rewritten", s2, store.PutOptions{}, nil)
	if err := c.Wait(context.Background(), "rewritten", gen); err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), data...)
	copy(want[10:], "CHANGED")
	if got, _, _ := b.Object("rewritten"); !bytes.Equal(got, want) {
		t.Fatal("a rewritten file's object does not have the rewrite")
	}
	if ups := b.Uploads(""); len(ups) != 0 {
		t.Errorf("multipart uploads left: %v", ups)
	}
}

// Changes committed while a file settles go up in one upload: tar's
// utimes after close costs no second request.
func TestSettleFoldsRecommits(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c, err := New(Options{Bucket: b, StagingDir: filepath.Join(t.TempDir(), "s"), Settle: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s, _ := commit(t, c, "f", []byte("data"))
	defer s.Close()
	if st := c.Status(); len(st) != 1 || st[0].State != Queued {
		t.Fatalf("settling file's status = %+v", st)
	}
	gen, err := c.Commit(context.Background(), "f", s, store.PutOptions{Metadata: map[string]string{"mtime": "42"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := b.Calls(memstore.OpPutObject); n != 1 {
		t.Errorf("%d PUTs for a file committed twice while settling, want 1", n)
	}
	if _, info, _ := b.Object("f"); info.Metadata["mtime"] != "42" {
		t.Errorf("metadata = %v, want the second commit's", info.Metadata)
	}
	// fsync does not wait for the settle time.
	s2, gen2 := commit(t, c, "g", []byte("x"))
	defer s2.Close()
	start := time.Now()
	if err := c.Wait(context.Background(), "g", gen2); err != nil || time.Since(start) > 150*time.Millisecond {
		t.Errorf("Wait took %v (%v)", time.Since(start), err)
	}
	_ = gen
}
