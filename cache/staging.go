package cache

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/ampfs/ampfs/store"
)

// Staged is the local copy of a file being written: a staging file plus
// what is needed to know whether it still has to be uploaded. Safe for
// concurrent use; ReadAt and WriteAt go straight to the file (pread/pwrite).
type Staged struct {
	f *os.File

	mu sync.Mutex
	// size is the logical file size in bytes. GUARDED_BY(mu)
	size int64
	// gen counts changes; cleanGen is the gen that was last uploaded.
	// INVARIANT: dirty iff gen != cleanGen. GUARDED_BY(mu)
	gen, cleanGen uint64
	// committed is the generation last committed (journaled). GUARDED_BY(mu)
	committed uint64
	// stream uploads parts while the file is written; nil when not
	// streaming. GUARDED_BY(mu)
	stream *stream
	// refs counts the holders (an open file, a pending upload); the
	// staging file is removed when the last lets go. GUARDED_BY(mu)
	refs int
	// src is the object the file equals outside touched (the ranges
	// written or truncated since, up to src.size), so an upload can copy
	// the rest on the server (copyplan.go); nil when there is none: a new
	// file, or one changed in too many places. GUARDED_BY(mu)
	src     *source
	touched spans // GUARDED_BY(mu)
	// trackers are the uploads in flight, each collecting what is touched
	// while it runs. GUARDED_BY(mu)
	trackers []*tracker
	// uploaded is the generation last uploaded and the object it became:
	// while gen is still that, the file is that object's bytes, and the
	// last Close gives it to adopt (the disk cache's whole files) instead
	// of deleting it. GUARDED_BY(mu)
	uploaded struct {
		gen       uint64
		key, etag string
	}
	adopt func(f *os.File, key, etag string, size int64) bool // nil: none
}

// NewStaged creates an empty staging file. It starts dirty: an empty file
// that was just created must still be uploaded.
func (c *Cache) NewStaged() (*Staged, error) {
	f, err := os.CreateTemp(c.opts.StagingDir, "staged-*")
	if err != nil {
		return nil, fmt.Errorf("create staging file: %w", err)
	}
	return &Staged{f: f, gen: 1, refs: 1, adopt: c.adopter()}, nil
}

// adopter is what Staged.Close hands an uploaded staging file to.
func (c *Cache) adopter() func(*os.File, string, string, int64) bool {
	if c.disk == nil {
		return nil
	}
	return c.disk.adopt
}

// openStaged reopens a journaled staging file at recovery: dirty, held by
// its pending upload.
func (c *Cache) openStaged(name string, size int64) (*Staged, error) {
	f, err := os.OpenFile(filepath.Join(c.opts.StagingDir, filepath.Base(name)), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() < size {
		f.Close()
		return nil, fmt.Errorf("staging file %s has %d of %d committed bytes", name, fi.Size(), size)
	}
	return &Staged{f: f, size: size, gen: 1, committed: 1, refs: 1, adopt: c.adopter()}, nil
}

// Ref adds a holder; each holder calls Close once.
func (s *Staged) Ref() *Staged {
	s.mu.Lock()
	s.refs++
	s.mu.Unlock()
	return s
}

func (s *Staged) name() string { return filepath.Base(s.f.Name()) }

// Fill copies the object key (at ETag etag, when not empty) into s, which
// must be empty, and marks s clean: it now equals the object.
func (c *Cache) Fill(ctx context.Context, s *Staged, key, etag string) error {
	var body io.ReadCloser
	var info store.ObjectInfo
	if w, ok := c.wholeOf(key, etag); ok {
		// A whole local copy: no GET.
		body, info = struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(w, 0, w.Size()), w}, store.ObjectInfo{Key: key, ETag: etag, Size: w.Size()}
	} else {
		var err error
		if body, info, err = c.opts.Bucket.Get(ctx, key, 0, -1, getOpts(etag)); err != nil {
			return err
		}
	}
	defer body.Close()
	n, err := io.Copy(io.NewOffsetWriter(s.f, 0), body)
	if err != nil {
		return fmt.Errorf("download %q to staging file: %w", key, err)
	}
	if n != info.Size {
		return fmt.Errorf("download %q: got %d of %d bytes: %w", key, n, info.Size, io.ErrUnexpectedEOF)
	}
	s.mu.Lock()
	s.size = n
	s.cleanGen = s.gen
	s.src, s.touched = nil, spans{}
	if info.ETag != "" {
		s.src = &source{key: key, etag: info.ETag, size: n}
	}
	s.mu.Unlock()
	return nil
}

// touchLocked records that [off, end) changed: it no longer equals the
// source, nor what the uploads in flight are storing. The caller holds mu.
func (s *Staged) touchLocked(off, end int64) {
	if s.src != nil {
		s.touched.add(off, min(end, s.src.size))
		if s.touched.all {
			s.src, s.touched = nil, spans{}
		}
	}
	for _, t := range s.trackers {
		t.touched.add(off, min(end, t.size))
	}
}

// startUpload returns the generation and size an upload starts from, the
// source it may copy from (nil: none), and a tracker that collects what
// changes while it runs; the upload ends with endUpload.
func (s *Staged) startUpload() (gen uint64, size int64, src *copySource, t *tracker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src != nil {
		src = &copySource{source: *s.src, touched: s.touched.clone()}
	}
	t = &tracker{size: s.size}
	s.trackers = append(s.trackers, t)
	return s.gen, s.size, src, t
}

// endUpload ends the upload t tracked. When it stored the object info (its
// key and ETag; its size is t's), that object is the new source: the file
// differs from it only where it was touched since the upload started.
func (s *Staged) endUpload(t *tracker, info *store.ObjectInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.trackers, t); i >= 0 {
		s.trackers = slices.Delete(s.trackers, i, i+1)
	}
	if info == nil || info.ETag == "" || info.Key == "" {
		return
	}
	s.src, s.touched = nil, spans{}
	if !t.touched.all {
		s.src, s.touched = &source{key: info.Key, etag: info.ETag, size: t.size}, t.touched
	}
}

// ReadAt reads from the staged data; reads past the logical size return
// io.EOF like a file.
func (s *Staged) ReadAt(p []byte, off int64) (int, error) {
	size := s.Size()
	if off >= size {
		return 0, io.EOF
	}
	if rem := size - off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := s.f.ReadAt(p, off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

// WriteAt writes p at off, growing the file as needed.
func (s *Staged) WriteAt(p []byte, off int64) (int, error) {
	n, err := s.f.WriteAt(p, off)
	s.mu.Lock()
	if end := off + int64(n); end > s.size {
		s.size = end
	}
	if n > 0 {
		s.gen++
		s.touchLocked(off, off+int64(n))
	}
	st, size := s.stream, s.size
	s.mu.Unlock()
	if st != nil && n > 0 {
		st.advance(off, size)
	}
	return n, err
}

// Truncate sets the size.
func (s *Staged) Truncate(size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.f.Truncate(size); err != nil {
		return err
	}
	// Cut off, or grown with zeros: not the source's bytes either way.
	s.touchLocked(min(size, s.size), max(size, s.size))
	s.size = size
	s.gen++
	if s.stream != nil {
		s.stream.truncated(size)
	}
	return nil
}

// Size returns the logical size in bytes.
func (s *Staged) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Dirty reports whether s has changes that are not uploaded.
func (s *Staged) Dirty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen != s.cleanGen
}

// MarkDirty makes s dirty without changing data (an O_TRUNC open of an
// empty file must still be uploaded).
func (s *Staged) MarkDirty() {
	s.mu.Lock()
	s.gen++
	s.mu.Unlock()
}

// snapshot returns the generation and size an upload starts from.
func (s *Staged) snapshot() (gen uint64, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen, s.size
}

// markClean records that generation gen is on the server; it reports false
// when s changed since (it stays dirty).
func (s *Staged) markClean(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return false
	}
	s.cleanGen = gen
	return true
}

// noteUploaded records that generation gen is the object (key, etag),
// unless s changed since.
func (s *Staged) noteUploaded(gen uint64, key, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen == gen {
		s.uploaded.gen, s.uploaded.key, s.uploaded.etag = gen, key, etag
	}
}

// Close lets go of s; the last holder's Close removes the staging file.
// Data not committed is lost: holders close clean files, files whose
// object was deleted, and committed files once their upload is done.
func (s *Staged) Close() error {
	s.mu.Lock()
	s.refs--
	last := s.refs <= 0
	st := s.stream
	if last {
		s.stream = nil
	}
	up, gen, size := s.uploaded, s.gen, s.size
	s.mu.Unlock()
	if !last {
		return nil
	}
	if st != nil {
		st.abort() // the file was discarded before its stream finished
	}
	if s.adopt != nil && up.etag != "" && up.gen == gen && s.adopt(s.f, up.key, up.etag, size) {
		return nil // the disk cache's now
	}
	err := s.f.Close()
	if rerr := os.Remove(s.f.Name()); err == nil {
		err = rerr
	}
	return err
}

// cleanGenOf returns the generation last marked clean.
func (s *Staged) cleanGenOf() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cleanGen
}

// Gen returns the generation: it grows with every change.
func (s *Staged) Gen() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Committed returns the generation last committed with Commit; a Staged
// whose Gen is past it has changes a crash would lose.
func (s *Staged) Committed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed
}

func (s *Staged) setCommitted(gen uint64) {
	s.mu.Lock()
	s.committed = max(s.committed, gen)
	s.mu.Unlock()
}

// takeStream detaches the stream, for the upload that finishes it. A
// stream that has sent nothing yet stays: an early close (dd closes a
// descriptor it dup'ed right after opening) must not end the streaming of
// the writes still to come.
func (s *Staged) takeStream() *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stream
	if st == nil || !st.started() {
		return nil
	}
	s.stream = nil
	return st
}
