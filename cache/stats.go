package cache

import "sync/atomic"

// Stats are the cache's counters since it was made.
type Stats struct {
	Hits, Misses, Evictions int64 // block lookups by readers
	BytesFetched            int64 // bytes read from the store for blocks
	BytesPrefetched         int64 // of those, fetched ahead of a reader
	Blocks                  int   // blocks held now
	BlockSize               int64 // bytes
}

type counters struct {
	hits, misses, evictions atomic.Int64
	fetched, prefetched     atomic.Int64
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits:            c.stats.hits.Load(),
		Misses:          c.stats.misses.Load(),
		Evictions:       c.stats.evictions.Load(),
		BytesFetched:    c.stats.fetched.Load(),
		BytesPrefetched: c.stats.prefetched.Load(),
		Blocks:          c.blocks.Len(),
		BlockSize:       c.opts.BlockSize,
	}
}
