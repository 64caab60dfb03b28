package main

import (
	"github.com/ampfs/ampfs/cache"
	"github.com/ampfs/ampfs/internal/metrics"
)

// registerCacheMetrics exposes the block cache's counters, read at each
// scrape.
func registerCacheMetrics(m *metrics.Metrics, c any) {
	ch, ok := c.(interface{ Stats() cache.Stats })
	if !ok {
		return
	}
	counter := func(name, help string, f func(cache.Stats) int64) {
		m.CounterFunc(name, help, func() float64 { return float64(f(ch.Stats())) })
	}
	counter("cache_hits_total", "Block lookups served from memory.", func(s cache.Stats) int64 { return s.Hits })
	counter("cache_misses_total", "Block lookups that fetched from S3.", func(s cache.Stats) int64 { return s.Misses })
	counter("cache_evictions_total", "Blocks dropped to make room.", func(s cache.Stats) int64 { return s.Evictions })
	counter("cache_fetched_bytes_total", "Bytes read from S3 into the block cache.", func(s cache.Stats) int64 { return s.BytesFetched })
	counter("cache_whole_hits_total", "Opens that found the whole file in the disk cache.", func(s cache.Stats) int64 { return s.WholeHits })
	counter("cache_prefetched_bytes_total", "Of those, bytes fetched ahead of a reader.", func(s cache.Stats) int64 { return s.BytesPrefetched })
	if q, ok := c.(interface{ Status() []cache.UploadStatus }); ok {
		for _, state := range []cache.State{cache.Queued, cache.Uploading, cache.Failed} {
			m.GaugeFunc("upload_queue_"+string(state), "Files whose upload is "+string(state)+".", func() float64 {
				n := 0
				for _, u := range q.Status() {
					if u.State == state {
						n++
					}
				}
				return float64(n)
			})
		}
		m.GaugeFunc("upload_pending_bytes", "Bytes committed but not yet uploaded.", func() float64 {
			var n int64
			for _, u := range q.Status() {
				n += u.Size
			}
			return float64(n)
		})
	}
	m.GaugeFunc("cache_bytes", "Bytes held in the block cache.", func() float64 {
		s := ch.Stats()
		return float64(int64(s.Blocks) * s.BlockSize)
	})
}
