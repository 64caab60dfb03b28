package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ampfs/ampfs/store"
)

// A file written front to back (cp, dd, tar) is uploaded while it is being
// written: every part-size stretch the writer finishes goes up as a part
// of a multipart upload, so when the file is closed little is left to
// send. A write behind what was already sent (the writer is not
// sequential after all) or a truncate below it marks the stream broken;
// its upload is then aborted and the file goes up whole, as any other.

// streamPartsPerStep: the part size doubles every this many parts, so the
// 10,000 parts S3 allows reach 5 TiB from a 5 MiB start.
const streamPartsPerStep = 1000

// stream is the upload in progress of one Staged.
type stream struct {
	c    *Cache
	key  string
	opts store.PutOptions
	r    io.ReaderAt   // the staging file
	sem  chan struct{} // parts in flight
	wg   sync.WaitGroup

	// starting serializes advance: the writes of one file that start parts
	// wait here, for the upload to be created or a part slot to free up.
	// It is the writer's back-pressure, held across those waits on purpose;
	// nothing but this file's writes ever takes it, and mu is taken inside.
	starting sync.Mutex

	mu     sync.Mutex
	id     string       // upload id, "" before the first part. GUARDED_BY(mu)
	parts  []store.Part // GUARDED_BY(mu)
	next   int64        // bytes handed to parts. GUARDED_BY(mu)
	broken bool         // GUARDED_BY(mu)
	err    error        // GUARDED_BY(mu)
}

// partSizeAt is the size of part i (0-based) of a stream.
func (c *Cache) partSizeAt(i int) int64 {
	return c.opts.PartSize << min(i/streamPartsPerStep, 20)
}

// Stream starts uploading s under key while it is written. Call it for a
// file that starts empty (a create, or an open with O_TRUNC).
func (c *Cache) Stream(s *Staged, key string, opts store.PutOptions) {
	st := &stream{c: c, key: key, opts: opts, r: s.f, sem: make(chan struct{}, c.opts.UploadConcurrency)}
	s.mu.Lock()
	old := s.stream
	s.stream = st
	s.mu.Unlock()
	if old != nil {
		old.abort()
	}
}

// advance is told the staged size after a write at off: it starts the parts
// that are now complete.
func (st *stream) advance(off, size int64) {
	st.starting.Lock()
	defer st.starting.Unlock()
	st.mu.Lock()
	if off < st.next {
		st.broken = true
	}
	stop := st.broken || st.err != nil
	id := st.id
	st.mu.Unlock()
	if stop {
		return
	}
	for {
		st.mu.Lock()
		i := len(st.parts)
		ps := st.c.partSizeAt(i)
		due := size-st.next >= ps && i < store.MaxParts-1 && !st.broken && st.err == nil
		st.mu.Unlock()
		if !due {
			return
		}
		if id == "" {
			var err error
			if id, err = st.c.opts.Bucket.CreateMultipartUpload(st.c.opts.Context, st.key, st.opts); err != nil {
				st.mu.Lock()
				st.err = err
				st.mu.Unlock()
				return
			}
			st.c.writeStreamRecord(st.key, id)
			st.mu.Lock()
			st.id = id
			st.mu.Unlock()
		}
		st.sem <- struct{}{} // a writer outrunning the link waits here
		st.mu.Lock()
		st.parts = append(st.parts, store.Part{})
		poff := st.next
		st.next += ps
		st.wg.Add(1)
		st.mu.Unlock()
		go st.upload(id, i, poff, ps)
	}
}

func (st *stream) upload(id string, i int, off, n int64) {
	defer st.wg.Done()
	defer func() { <-st.sem }()
	p, err := st.c.opts.Bucket.UploadPart(st.c.opts.Context, st.key, id, int32(i+1), io.NewSectionReader(st.r, off, n), n)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil {
		if st.err == nil {
			st.err = fmt.Errorf("part %d: %w", i+1, err)
		}
		return
	}
	st.parts[i] = p
}

// truncated is told of a truncate to size.
func (st *stream) truncated(size int64) {
	st.mu.Lock()
	if size < st.next {
		st.broken = true
	}
	st.mu.Unlock()
}

// abort ends the stream's upload, if it started one.
func (st *stream) abort() {
	st.wg.Wait()
	st.mu.Lock()
	id := st.id
	st.id = ""
	st.mu.Unlock()
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(st.c.opts.Context, abortTimeout)
	defer cancel()
	if err := st.c.opts.Bucket.AbortMultipartUpload(ctx, st.key, id); err != nil {
		st.c.opts.Logger.Debug().Str("key", st.key).Str("upload_id", id).Err(err).Msg("aborting a streamed upload")
	}
	st.c.removeStreamRecord(st.key)
}

// finish completes the stream as the upload of size bytes of s under key,
// if it still can: ok is false when it cannot (nothing was streamed, the
// writer went back, the file was renamed), and the caller uploads whole.
func (st *stream) finish(ctx context.Context, r io.ReaderAt, key string, size int64) (info store.ObjectInfo, ok bool, err error) {
	st.wg.Wait()
	st.mu.Lock()
	usable := st.id != "" && !st.broken && st.err == nil && st.key == key && size >= st.next
	id, next, parts := st.id, st.next, append([]store.Part(nil), st.parts...)
	st.mu.Unlock()
	if !usable {
		st.c.opts.Logger.Debug().Str("key", key).Str("stream_key", st.key).Bool("started", id != "").Bool("broken", st.broken).
			AnErr("stream_err", st.err).Int64("len", size).Int64("streamed", next).Msg("uploading whole: the stream cannot finish it")
		st.abort()
		return store.ObjectInfo{}, false, nil
	}
	// The tail: the rest in parts of the current size, the last shorter.
	for off := next; off < size; {
		n := min(st.c.partSizeAt(len(parts)), size-off)
		p, err := st.c.opts.Bucket.UploadPart(ctx, key, id, int32(len(parts)+1), io.NewSectionReader(r, off, n), n)
		if err != nil {
			st.abort()
			return store.ObjectInfo{}, true, err
		}
		parts = append(parts, p)
		off += n
	}
	info, err = st.c.opts.Bucket.CompleteMultipartUpload(ctx, key, id, parts)
	if err != nil {
		st.abort()
		return store.ObjectInfo{}, true, err
	}
	st.mu.Lock()
	st.id = "" // done: nothing to abort
	st.mu.Unlock()
	st.c.removeStreamRecord(key)
	st.c.opts.Logger.Debug().Str("op", "stream").Str("key", key).Int64("len", size).Int("part", len(parts)).
		Int64("streamed", next).Msg("uploaded")
	return info, true, nil
}

// streamRecord names a multipart upload a stream started, so that after a
// crash the next mount aborts it (the data is not committed: the file was
// never closed).
type streamRecord struct {
	Key      string    `json:"key"`
	UploadID string    `json:"upload_id"`
	Started  time.Time `json:"started"`
}

func (c *Cache) streamDir() string { return filepath.Join(c.opts.JournalDir, "streams") }

func (c *Cache) streamRecordPath(key string) string {
	return filepath.Join(c.streamDir(), filepath.Base(c.recordPath(key)))
}

func (c *Cache) writeStreamRecord(key, id string) {
	data, _ := json.Marshal(streamRecord{Key: key, UploadID: id, Started: time.Now()})
	if err := os.WriteFile(c.streamRecordPath(key), data, 0o600); err != nil {
		c.opts.Logger.Warn().Str("key", key).Err(err).Msg("could not note a streamed upload")
	}
}

func (c *Cache) removeStreamRecord(key string) { os.Remove(c.streamRecordPath(key)) }

// abortStreams aborts the uploads of streams a previous run left.
func (c *Cache) abortStreams() {
	ents, _ := os.ReadDir(c.streamDir())
	for _, e := range ents {
		p := filepath.Join(c.streamDir(), e.Name())
		data, err := os.ReadFile(p)
		var r streamRecord
		if err == nil && json.Unmarshal(data, &r) == nil && r.UploadID != "" {
			ctx, cancel := context.WithTimeout(c.opts.Context, abortTimeout)
			if err := c.opts.Bucket.AbortMultipartUpload(ctx, r.Key, r.UploadID); err != nil {
				c.opts.Logger.Debug().Str("key", r.Key).Err(err).Msg("aborting a streamed upload of an earlier run")
			}
			cancel()
		}
		os.Remove(p)
	}
}

// streamBusy reports whether s's stream has parts in flight: its writer
// is writing, or waiting for the link.
func (s *Staged) streamBusy() bool {
	s.mu.Lock()
	st := s.stream
	s.mu.Unlock()
	return st != nil && len(st.sem) > 0
}

// started reports whether the stream has begun its upload.
func (st *stream) started() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.id != "" || st.broken || st.err != nil
}
