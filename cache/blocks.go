package cache

import (
	"context"
	"fmt"
	"io"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/ampfs/ampfs/store"
)

// blockKey names one block of one version of an object: a new ETag is a
// new key, so an object replaced on the server is never served stale.
type blockKey struct {
	key, etag string
	idx       int64
}

// inflight is a block on its way from the store. done is closed once data
// or err is set.
type inflight struct {
	done     chan struct{}
	data     []byte
	err      error
	prefetch bool // fetched ahead of a reader; on failure readers retry
}

// maxChunkBlocks bounds one readahead GET: a sequential reader is served
// by few large requests (per-request cost dominates on fast links: 8 MiB
// GETs read about twice as fast as 1 MiB ones against versitygw here),
// while each block becomes readable as soon as its bytes arrive.
const maxChunkBlocks = 8

// newBlockLRU makes the clean-block cache: golang-lru counts entries, and
// every block but an object's last is exactly BlockSize bytes, so
// CacheSize/BlockSize entries bound the bytes held.
func (c *Cache) newBlockLRU() error {
	n := max(int(c.opts.CacheSize/c.opts.BlockSize), 4)
	l, err := lru.NewWithEvict(n, func(k blockKey, b []byte) {
		c.stats.evictions.Add(1)
		if c.disk != nil {
			c.disk.Put(k, b) // queued: never waits for the disk
		}
	})
	if err != nil {
		return err
	}
	c.blocks = l
	return nil
}

// block returns block idx of the object (key, etag) of size bytes: from
// the cache, from a fetch already on its way (one GET serves every reader
// of a block), or with a GET of its own. Fetches run under the Cache's
// context, so a reader that gives up fails nobody else.
func (c *Cache) block(ctx context.Context, key, etag string, size, idx int64) ([]byte, error) {
	bk := blockKey{key, etag, idx}
	for attempt := 0; ; attempt++ {
		if b, ok := c.blocks.Get(bk); ok {
			c.stats.hits.Add(1)
			return b, nil
		}
		if c.disk != nil {
			if b, ok := c.disk.Get(bk); ok {
				c.stats.hits.Add(1)
				c.blocks.Add(bk, b)
				return b, nil
			}
		}
		c.mu.Lock()
		f, ok := c.inflight[bk]
		if !ok {
			f = &inflight{done: make(chan struct{})}
			c.inflight[bk] = f
		}
		c.mu.Unlock()
		if !ok {
			c.stats.misses.Add(1)
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.fetch(key, etag, size, idx, []*inflight{f})
			}()
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err == nil {
			return f.data, nil
		}
		if !f.prefetch || attempt > 0 {
			return nil, f.err
		}
		// A failed readahead is retried once by the reader itself.
	}
}

// fetch GETs the blocks from idx on, one per entry of fs (already in the
// in-flight table), with one ranged GET, completing each block as its
// bytes arrive.
func (c *Cache) fetch(key, etag string, size, idx int64, fs []*inflight) {
	bs := c.opts.BlockSize
	off := idx * bs
	end := min(off+int64(len(fs))*bs, size)
	finish := func(i int, data []byte, err error) {
		f := fs[i]
		f.data, f.err = data, err
		bk := blockKey{key, etag, idx + int64(i)}
		if err == nil {
			c.blocks.Add(bk, data)
			if f.prefetch {
				c.stats.prefetched.Add(int64(len(data)))
			}
		}
		c.mu.Lock()
		delete(c.inflight, bk)
		c.mu.Unlock()
		close(f.done)
	}
	failRest := func(from int, err error) {
		for i := from; i < len(fs); i++ {
			finish(i, nil, err)
		}
	}
	if end <= off {
		failRest(0, fmt.Errorf("block %d of %q is past its end (%d bytes)", idx, key, size))
		return
	}
	body, _, err := c.opts.Bucket.Get(c.opts.Context, key, off, end-off, getOpts(etag))
	if err != nil {
		failRest(0, err)
		return
	}
	defer body.Close()
	for i := range fs {
		boff := off + int64(i)*bs
		b := make([]byte, min(bs, end-boff))
		n, err := io.ReadFull(body, b)
		c.stats.fetched.Add(int64(n))
		if err != nil {
			failRest(i, store.Errorf(store.ErrUnavailable, "GetObject", key, "block at %d: read %d of %d bytes: %v", boff, n, len(b), err))
			return
		}
		finish(i, b, nil)
	}
}

// prefetch fetches blocks [from, to) of an object in the background, in
// runs of up to maxChunkBlocks missing blocks per GET. At most
// Options.PrefetchBlocks blocks are in flight across all files, which
// bounds readahead memory; blocks that find no room are left for the
// reader, or a later prefetch, to fetch. It returns the block it stopped
// at: to, or the first block that found no room.
func (c *Cache) prefetch(key, etag string, size, from, to int64) int64 {
	for idx := from; idx < to; {
		// Claim a run of contiguous blocks that are neither cached nor on
		// their way.
		var run []*inflight
		start := idx
		c.mu.Lock()
		for ; idx < to && len(run) < maxChunkBlocks; idx++ {
			bk := blockKey{key, etag, idx}
			if _, busy := c.inflight[bk]; busy || c.blocks.Contains(bk) || (c.disk != nil && c.disk.Contains(bk)) {
				if len(run) > 0 {
					break
				}
				start = idx + 1
				continue
			}
			if !c.prefetchSlots.TryAcquire(1) {
				to = idx // no room: stop here
				break
			}
			f := &inflight{done: make(chan struct{}), prefetch: true}
			c.inflight[bk] = f
			run = append(run, f)
		}
		c.mu.Unlock()
		if len(run) == 0 {
			continue
		}
		c.wg.Add(1)
		go func(start int64, run []*inflight) {
			defer c.wg.Done()
			defer c.prefetchSlots.Release(int64(len(run)))
			c.fetch(key, etag, size, start, run)
			if err := run[len(run)-1].err; err != nil {
				c.opts.Logger.Debug().Str("op", "prefetch").Str("key", key).Int64("off", start*c.opts.BlockSize).Err(err).Msg("readahead failed")
			}
		}(start, run)
	}
	return to
}
