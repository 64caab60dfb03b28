package cache

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// A commit of a file that is still being written (dd's early close of a
// dup'ed descriptor) is held back while the writes go on; the final
// commit uploads it once, completing the stream's multipart upload. Before,
// the early commit's upload ended the stream with a partial object, and
// the final close uploaded the whole file again (seen in make bench:
// 8 multipart uploads for 4 files).
func TestCommitOfFileStillWrittenIsHeldBack(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c, err := New(Options{Bucket: b, StagingDir: filepath.Join(t.TempDir(), "s"), JournalDir: filepath.Join(t.TempDir(), "j"),
		PartSize: store.MinPartSize, UploadConcurrency: 2, Settle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s, err := c.NewStaged()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.Stream(s, "dd.out", store.PutOptions{})
	data := randBytes(3*int(store.MinPartSize) + 77)
	const chunk = 1 << 20
	write := func(from, to int) {
		for off := from; off < to; off += chunk {
			s.WriteAt(data[off:min(off+chunk, to)], int64(off))
		}
	}
	// The early close: a commit after the first chunk.
	write(0, chunk/4)
	if _, err := c.Commit(context.Background(), "dd.out", s, store.PutOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	// The writes go on, past the end of the first check.
	for off := chunk / 4; off < len(data); off += chunk {
		write(off, min(off+chunk, len(data)))
		time.Sleep(writerDeferCheck / 8)
	}
	if n := b.Calls(memstore.OpCompleteMultipartUpload) + b.Calls(memstore.OpPutObject); n != 0 {
		t.Fatalf("%d uploads completed while the file was still being written", n)
	}
	// The final close.
	gen, err := c.Commit(context.Background(), "dd.out", s, store.PutOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), "dd.out", gen); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Object("dd.out"); !bytes.Equal(got, data) {
		t.Fatalf("object differs (%d bytes)", len(got))
	}
	if n, m := b.Calls(memstore.OpCreateMultipartUpload), b.Calls(memstore.OpCompleteMultipartUpload); n != 1 || m != 1 {
		t.Errorf("%d multipart uploads created, %d completed; want the stream's one", n, m)
	}
}

// A held-back commit is uploaded once the file stops changing, and at
// once when someone waits for it (fsync).
func TestHeldBackCommitUploadsWhenIdleOrWaited(t *testing.T) {
	b := memstore.New(memstore.Options{})
	dir := t.TempDir()
	c, err := New(Options{Bucket: b, StagingDir: filepath.Join(dir, "s"), JournalDir: filepath.Join(dir, "j"), Settle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for _, wait := range []bool{false, true} {
		b.ResetCalls()
		s, err := c.NewStaged()
		if err != nil {
			t.Fatal(err)
		}
		s.WriteAt([]byte("first"), 0)
		gen, err := c.Commit(context.Background(), "k", s, store.PutOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		s.WriteAt([]byte(" and more"), 5) // written on within the settle
		if wait {
			if err := c.Wait(context.Background(), "k", gen); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for b.Calls(memstore.OpPutObject) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(start)
		if b.Calls(memstore.OpPutObject) != 1 {
			t.Fatalf("wait=%v: the held-back commit was not uploaded", wait)
		}
		if wait && took >= writerDeferCheck {
			t.Errorf("a waited-for commit was held back %v", took)
		}
		if !wait && took < writerDeferCheck {
			t.Errorf("a commit of a file written on was uploaded after %v, not held back", took)
		}
		if got, _, _ := b.Object("k"); !bytes.HasPrefix(got, []byte("first")) {
			t.Errorf("object %q", got)
		}
		s.Close()
	}
}

// An upload that fails because another descriptor wrote the file while it
// was read (S3 refuses a body that no longer matches its checksum:
// XAmzContentSHA256Mismatch) is redone at once, and fsync (Wait) does not
// see that failure. Before, close with --sync-on-close returned EINVAL
// (posixtest's ParallelFileOpen).
func TestUploadOfFileChangedMeanwhileIsRedone(t *testing.T) {
	var s *Staged
	var once sync.Once
	b := memstore.New(memstore.Options{Fault: func(op, key string) error {
		var err error
		if op == memstore.OpPutObject {
			once.Do(func() {
				s.WriteAt([]byte("HELLO"), 0) // the other descriptor
				err = store.Errorf(store.ErrInvalidArgument, op, key, "XAmzContentSHA256Mismatch")
			})
		}
		return err
	}})
	c := wbCache(t, b, t.TempDir())
	var err error
	if s, err = c.NewStaged(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.WriteAt([]byte("hello world"), 0)
	gen, err := c.Commit(context.Background(), "k", s, store.PutOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), "k", gen); err != nil {
		t.Fatalf("wait reported the upload that the change broke: %v", err)
	}
	if got, _, _ := b.Object("k"); string(got) != "HELLO world" {
		t.Errorf("object %q", got)
	}
	if n := b.Calls(memstore.OpPutObject); n != 2 {
		t.Errorf("%d PUTs, want 2", n)
	}
}

// A writer held back by the link (its stream's parts in flight, the write
// waiting for a slot) is not an idle file: the early commit stays held
// back and the stream is not ended under it. Before, the first look after
// a second without writes uploaded that commit, completing the stream
// with a partial object, and the final close uploaded the whole file
// again (make bench seqwrite4: four 1 GiB writers on a slow server).
func TestCommitHeldBackWhileWriterWaitsForTheLink(t *testing.T) {
	b := memstore.New(memstore.Options{Fault: func(op, key string) error {
		if op == memstore.OpUploadPart {
			time.Sleep(writerDeferCheck + writerDeferCheck/4) // a slow link
		}
		return nil
	}})
	c, err := New(Options{Bucket: b, StagingDir: filepath.Join(t.TempDir(), "s"), JournalDir: filepath.Join(t.TempDir(), "j"),
		PartSize: store.MinPartSize, UploadConcurrency: 1, Settle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s, err := c.NewStaged()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.Stream(s, "slow.out", store.PutOptions{})
	data := randBytes(3*int(store.MinPartSize) + 10)
	s.WriteAt(data[:1000], 0)
	if _, err := c.Commit(context.Background(), "slow.out", s, store.PutOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	const chunk = 1 << 20
	for off := 1000; off < len(data); off += chunk {
		s.WriteAt(data[off:min(off+chunk, len(data))], int64(off)) // blocks while a part is in flight
	}
	gen, err := c.Commit(context.Background(), "slow.out", s, store.PutOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), "slow.out", gen); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Object("slow.out"); !bytes.Equal(got, data) {
		t.Fatalf("object differs (%d bytes)", len(got))
	}
	if n, m := b.Calls(memstore.OpCreateMultipartUpload), b.Calls(memstore.OpCompleteMultipartUpload); n != 1 || m != 1 {
		t.Errorf("%d multipart uploads created, %d completed; want the stream's one", n, m)
	}
}
