package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ampfs/ampfs/store"
)

// maxSkip is how far forward a read may jump and still be served from the
// open stream by discarding the gap: cheaper than a new request on a fast
// link. Bytes.
const maxSkip = 1 << 20

// Reader reads one version of one object for one open file handle.
type Reader struct {
	c    *Cache
	key  string
	etag string
	size int64

	mu sync.Mutex
	// stream is an open GET from some offset to the end of the object; a
	// read takes it out (so no lock is held during I/O) and puts it back.
	// GUARDED_BY(mu)
	stream *stream
	// lastEnd is where the previous read ended: a read starting there is
	// sequential and worth a stream. GUARDED_BY(mu)
	lastEnd int64
}

type stream struct {
	body   io.ReadCloser
	pos    int64
	cancel context.CancelFunc
}

func (s *stream) close() {
	s.body.Close()
	s.cancel()
}

// NewReader returns a Reader of key at ETag etag with the given size.
func (c *Cache) NewReader(key, etag string, size int64) *Reader {
	return &Reader{c: c, key: key, etag: etag, size: size}
}

// ReadAt fills p from offset off; it returns io.EOF only when off is at or
// past the end, and fewer bytes than len(p) only at the end of the object.
func (r *Reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), r.size-off)
	p = p[:want]

	r.mu.Lock()
	st := r.stream
	r.stream = nil
	sequential := off == r.lastEnd
	r.mu.Unlock()

	if st != nil && (off < st.pos || off-st.pos > maxSkip) {
		st.close()
		st = nil
	}
	if st == nil && sequential {
		var err error
		if st, err = r.open(off); err != nil {
			return 0, err
		}
	}
	if st == nil {
		// A random read: fetch exactly the range.
		return r.readRange(ctx, p, off)
	}
	n, err := r.readStream(ctx, st, p, off)
	if err != nil {
		st.close()
		return n, err
	}
	r.mu.Lock()
	r.lastEnd = off + int64(n)
	if r.stream == nil {
		r.stream, st = st, nil
	}
	r.mu.Unlock()
	if st != nil {
		st.close()
	}
	return n, nil
}

// open starts a GET from off to the end, under its own context so that
// it outlives the FUSE request that opened it.
func (r *Reader) open(off int64) (*stream, error) {
	ctx, cancel := context.WithCancel(r.c.opts.Context)
	body, _, err := r.c.opts.Bucket.Get(ctx, r.key, off, -1, getOpts(r.etag))
	if err != nil {
		cancel()
		return nil, err
	}
	return &stream{body: body, pos: off, cancel: cancel}, nil
}

func (r *Reader) readStream(ctx context.Context, st *stream, p []byte, off int64) (int, error) {
	// An interrupted read (the kernel's FUSE_INTERRUPT ends ctx) must not
	// block on the network: cancelling the stream's request unblocks it.
	stop := context.AfterFunc(ctx, st.cancel)
	defer stop()
	if gap := off - st.pos; gap > 0 {
		if _, err := io.CopyN(io.Discard, st.body, gap); err != nil {
			return 0, r.readErr(err)
		}
		st.pos = off
	}
	n, err := io.ReadFull(st.body, p)
	st.pos += int64(n)
	if err != nil {
		return n, r.readErr(err)
	}
	return n, nil
}

func (r *Reader) readRange(ctx context.Context, p []byte, off int64) (int, error) {
	body, _, err := r.c.opts.Bucket.Get(ctx, r.key, off, int64(len(p)), getOpts(r.etag))
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.ReadFull(body, p)
	if err != nil {
		return n, r.readErr(err)
	}
	r.mu.Lock()
	r.lastEnd = off + int64(n)
	r.mu.Unlock()
	return n, nil
}

// readErr explains a body that ended early: the object is shorter than
// its listed size, so it changed or the connection broke.
func (r *Reader) readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return store.Errorf(store.ErrUnavailable, "GetObject", r.key, "response body ended early: %v", err)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("read %q: %w", r.key, store.ErrCanceled)
	}
	return store.Errorf(store.ErrUnavailable, "GetObject", r.key, "reading response body: %v", err)
}

// Close ends the open stream, if any.
func (r *Reader) Close() {
	r.mu.Lock()
	st := r.stream
	r.stream = nil
	r.mu.Unlock()
	if st != nil {
		st.close()
	}
}

// ETag returns the object version the reader reads.
func (r *Reader) ETag() string { return r.etag }
