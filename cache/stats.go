package cache

import "sync/atomic"

// Stats are the cache's counters since it was made.
type Stats struct {
	Hits, Misses, Evictions int64 // block lookups by readers
	BytesFetched            int64 // bytes read from the store for blocks
	BytesPrefetched         int64 // of those, fetched ahead of a reader
	Blocks                  int   // blocks held now
	BlockSize               int64 // bytes
	// The disk cache's whole files (whole.go); zero without a disk cache.
	WholeHits  int64 // opens that found a whole local copy
	WholeFiles int   // whole files on disk now
	DiskBytes  int64 // bytes the disk cache holds, files rounded up to 4 KiB
}

type counters struct {
	hits, misses, evictions atomic.Int64
	fetched, prefetched     atomic.Int64
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	var d DiskStats
	if c.disk != nil {
		d = c.disk.Stats()
	}
	return Stats{
		WholeHits:       d.WholeHits,
		WholeFiles:      d.WholeFiles,
		DiskBytes:       d.Bytes,
		Hits:            c.stats.hits.Load(),
		Misses:          c.stats.misses.Load(),
		Evictions:       c.stats.evictions.Load(),
		BytesFetched:    c.stats.fetched.Load(),
		BytesPrefetched: c.stats.prefetched.Load(),
		Blocks:          c.blocks.Len(),
		BlockSize:       c.opts.BlockSize,
	}
}
