package cache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// Wait returns only after the upload's onDone has run: a file closed with
// --sync-on-close must already know its new version (size, ETag) when
// close returns. Before, the caller could see the upload done while
// onDone had not run yet; the file's last close then dropped its staging
// file first, onDone no longer recognized it, and the file kept showing
// the version before the write (found by the integration test
// TestDifferential: a stat after an append showed the old size).
func TestWaitReturnsAfterOnDone(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c := wbCache(t, b, t.TempDir())
	s, err := c.NewStaged()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.WriteAt([]byte("hello"), 0)
	var ran atomic.Bool
	gen, err := c.Commit(context.Background(), "k", s, store.PutOptions{}, func(store.ObjectInfo) {
		time.Sleep(100 * time.Millisecond)
		ran.Store(true)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), "k", gen); err != nil {
		t.Fatal(err)
	}
	if !ran.Load() {
		t.Errorf("Wait returned before the upload's onDone ran")
	}
	if s.Dirty() {
		t.Errorf("staged data dirty after the upload")
	}
}

// A commit made while onDone runs is uploaded too, after it.
func TestCommitDuringOnDoneUploadedAgain(t *testing.T) {
	b := memstore.New(memstore.Options{})
	c := wbCache(t, b, t.TempDir())
	s, err := c.NewStaged()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.WriteAt([]byte("one"), 0)
	recommit := make(chan uint64, 1)
	var calls atomic.Int32
	var onDone func(store.ObjectInfo)
	onDone = func(store.ObjectInfo) {
		if calls.Add(1) == 1 {
			s.WriteAt([]byte("two"), 0)
			gen, err := c.Commit(context.Background(), "k", s, store.PutOptions{}, onDone)
			if err != nil {
				t.Error(err)
			}
			recommit <- gen
		}
	}
	if _, err := c.Commit(context.Background(), "k", s, store.PutOptions{}, onDone); err != nil {
		t.Fatal(err)
	}
	var gen uint64
	select {
	case gen = <-recommit:
	case <-time.After(10 * time.Second):
		t.Fatal("the first upload's onDone did not run")
	}
	if err := c.Wait(context.Background(), "k", gen); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Object("k"); string(got) != "two" {
		t.Errorf("object = %q, want the second commit", got)
	}
	if calls.Load() != 2 {
		t.Errorf("onDone ran %d times, want 2", calls.Load())
	}
	if len(c.Status()) != 0 {
		t.Errorf("status after both uploads: %+v", c.Status())
	}
}

// Supersede waits for an upload in flight and, unlike Cancel, does not
// delete what it stored: the caller is about to put the replacement there
// (a file renamed over this one).
func TestSupersedeWaitsAndKeeps(t *testing.T) {
	release := make(chan struct{})
	var deletes atomic.Int32
	b := memstore.New(memstore.Options{Fault: func(op, key string) error {
		switch op {
		case memstore.OpPutObject:
			<-release
		case memstore.OpDeleteObject:
			deletes.Add(1)
		}
		return nil
	}})
	c := wbCache(t, b, t.TempDir())
	s, _ := commit(t, c, "k", []byte("old"))
	defer s.Close()
	for i := 0; i < 200 && (len(c.Status()) == 0 || c.Status()[0].State != Uploading); i++ {
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- c.Supersede(context.Background(), "k") }()
	select {
	case err := <-done:
		t.Fatalf("Supersede returned (%v) while the upload was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a delete after a canceled upload runs on its own
	if n := deletes.Load(); n != 0 {
		t.Errorf("%d deletes after Supersede, want none", n)
	}
	if len(c.Status()) != 0 {
		t.Errorf("still pending: %+v", c.Status())
	}
}
