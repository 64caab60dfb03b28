package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// Records go into one log: a commit creates no file in the journal dir,
// a key's last record wins, an ended record is gone, and a reopened cache
// reads the same; a torn frame at the end (a crash while appending) is
// ignored and cut off.
func TestJournalLog(t *testing.T) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	open := func() *Cache {
		c, err := New(Options{Bucket: memstore.New(memstore.Options{}), StagingDir: filepath.Join(dir, "staging"), JournalDir: jdir})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	for i := range 100 {
		if err := c.writeRecord(record{Key: fmt.Sprintf("k%d", i%10), Staging: fmt.Sprintf("s%d", i), Size: int64(i), Committed: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		c.removeRecord(fmt.Sprintf("k%d", i))
	}
	if ents, _ := os.ReadDir(jdir); len(ents) != 2 { // log, streams/
		t.Errorf("journal dir after 100 records: %v", ents)
	}
	check := func(c *Cache, when string) {
		t.Helper()
		recs, err := c.readJournal()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 5 {
			t.Fatalf("%s: %d records, want 5: %+v", when, len(recs), recs)
		}
		for i, r := range recs {
			if want := fmt.Sprintf("k%d", i+5); r.Key != want || r.Staging != fmt.Sprintf("s%d", 90+i+5) || r.Size != int64(90+i+5) {
				t.Errorf("%s: record %d = %+v, want key %s from the last round", when, i, r, want)
			}
		}
	}
	check(c, "open")
	c.Close()
	// A crash in the middle of an append: half a frame at the end.
	fr, _ := frame(record{Key: "k9", Staging: "torn", Size: 1})
	f, err := os.OpenFile(filepath.Join(jdir, journalLog), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(fr[:len(fr)/2])
	f.Close()
	c2 := open()
	check(c2, "reopened")
	// The torn frame is cut off, so what is appended next is read.
	if err := c2.writeRecord(record{Key: "new", Staging: "n", Committed: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	c3 := open()
	defer c3.Close()
	if recs, _ := c3.readJournal(); len(recs) != 6 {
		t.Errorf("after an append past the torn frame: %d records, want 6", len(recs))
	}
}

// A log of mostly ended records is rewritten with the live ones.
func TestJournalLogRewrite(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Options{Bucket: memstore.New(memstore.Options{}), StagingDir: filepath.Join(dir, "staging"), JournalDir: filepath.Join(dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.writeRecord(record{Key: "keep", Staging: "s", Committed: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Each round leaves two dead frames (the record, its end): the log is
	// rewritten once, 10 rounds before the end.
	for i := range compactDead/2 + 10 {
		key := fmt.Sprintf("k%d", i)
		if err := c.writeRecord(record{Key: key, Staging: "s", Committed: time.Now()}); err != nil {
			t.Fatal(err)
		}
		c.removeRecord(key)
	}
	st, err := os.Stat(c.logPath())
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 16<<10 {
		t.Errorf("log of 1 live record is %d bytes", st.Size())
	}
	if recs, _ := c.readJournal(); len(recs) != 1 || recs[0].Key != "keep" {
		t.Errorf("records = %+v", recs)
	}
}

// A small file's bytes are in its record, so its commit does not sync the
// staging file: after a crash that lost the staging file's contents (or
// the file), the next mount writes it from the record and uploads the
// committed bytes. A large file's record names its synced staging file.
func TestJournalInlineSmallFile(t *testing.T) {
	dir := t.TempDir()
	down := memstore.New(memstore.Options{})
	down.SetFault(memstore.OpPutObject, store.ErrUnavailable, -1)
	c1, err := New(Options{Bucket: down, StagingDir: filepath.Join(dir, "staging"), JournalDir: filepath.Join(dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	small := []byte("small file, committed")
	s1, _ := commit(t, c1, "small", small)
	s2, _ := commit(t, c1, "gone", []byte("its staging file is lost"))
	c1.Close() // the crash: nothing uploaded
	// What an unsynced staging file can look like after a power loss.
	if err := os.Truncate(filepath.Join(dir, "staging", s1.name()), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "staging", s2.name())); err != nil {
		t.Fatal(err)
	}
	up := memstore.New(memstore.Options{})
	c2 := wbCache(t, up, dir)
	if n, err := c2.Recover(); err != nil || n != 2 {
		t.Fatalf("recover: %d, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c2.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"small": string(small), "gone": "its staging file is lost"} {
		if got, _, ok := up.Object(key); !ok || string(got) != want {
			t.Errorf("recovered %s = %q, want %q", key, got, want)
		}
	}
}

// Rewriting the log keeps a live small file's record: its staging file
// is synced and the record then names it without the bytes.
func TestJournalRewriteKeepsInlineRecords(t *testing.T) {
	dir := t.TempDir()
	open := func(b store.Bucket) *Cache {
		c, err := New(Options{Bucket: b, StagingDir: filepath.Join(dir, "staging"), JournalDir: filepath.Join(dir, "journal")})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	down := memstore.New(memstore.Options{})
	down.SetFault(memstore.OpPutObject, store.ErrUnavailable, -1)
	c1 := open(down)
	commit(t, c1, "keep", []byte("kept"))
	for i := range compactDead/2 + 10 {
		key := fmt.Sprintf("k%d", i)
		if err := c1.writeRecord(record{Key: key, Staging: "s", Committed: time.Now()}); err != nil {
			t.Fatal(err)
		}
		c1.removeRecord(key)
	}
	c1.Close()
	up := memstore.New(memstore.Options{})
	c2 := open(up)
	defer c2.Close()
	if n, err := c2.Recover(); err != nil || n != 1 {
		t.Fatalf("recover: %d, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c2.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := up.Object("keep"); string(got) != "kept" {
		t.Errorf("keep = %q", got)
	}
}

// A metadata-only commit (tar's utimes after close) is journaled with the
// file's bytes, without a sync of its own: after a crash that also emptied
// the unsynced staging file, the next mount uploads the bytes with the
// new metadata.
func TestCommitMetaKeepsTheBytes(t *testing.T) {
	dir := t.TempDir()
	down := memstore.New(memstore.Options{})
	down.SetFault(memstore.OpPutObject, store.ErrUnavailable, -1)
	c1, err := New(Options{Bucket: down, StagingDir: filepath.Join(dir, "staging"), JournalDir: filepath.Join(dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := commit(t, c1, "f", []byte("data"))
	s.MarkDirty()
	if _, err := c1.CommitMeta(context.Background(), "f", s, store.PutOptions{Metadata: map[string]string{"mtime": "1600000000"}}, nil); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	if err := os.Truncate(filepath.Join(dir, "staging", s.name()), 0); err != nil {
		t.Fatal(err)
	}
	up := memstore.New(memstore.Options{})
	c2 := wbCache(t, up, dir)
	if n, err := c2.Recover(); err != nil || n != 1 {
		t.Fatalf("recover: %d, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c2.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	got, _, _ := up.Object("f")
	info, err := up.Head(ctx, "f")
	if string(got) != "data" || err != nil || info.Metadata["mtime"] != "1600000000" {
		t.Errorf("recovered f = %q, metadata %v (%v)", got, info.Metadata, err)
	}
}
