package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/ampfs/ampfs/store"
)

// Options configure a Cache. Each field documents its zero-value default.
type Options struct {
	// Bucket is the object store. Required.
	Bucket store.Bucket
	// StagingDir holds staging files; it is created if missing. Required.
	StagingDir string
	// JournalDir holds the records of pending uploads. Zero: StagingDir's
	// sibling "journal".
	JournalDir string
	// MaxDirty bounds the committed bytes waiting for upload; Commit waits
	// beyond it. Zero: 2 GiB.
	MaxDirty int64
	// UploadWorkers is how many files upload at once. Zero: 16.
	UploadWorkers int
	// Settle is how long a committed file waits before its upload is
	// queued, so that the metadata changes right after a close (tar's
	// utimes and chmod) go up with it. Zero: none.
	Settle time.Duration
	// DiskCacheDir, when set, keeps blocks evicted from memory in files
	// there (see DiskCache). Zero: no disk cache.
	DiskCacheDir string
	// DiskCacheSize bounds the disk cache in bytes; it is never exceeded.
	// Zero means 4 GiB.
	DiskCacheSize int64
	// MultipartThreshold: files of at least this many bytes go up as a
	// multipart upload. Zero means 8 MiB. Never more than store.MaxPutSize.
	MultipartThreshold int64
	// PartSize is the smallest part size in bytes; it grows for large files
	// so they fit in store.MaxParts parts. Zero means 8 MiB; values below
	// store.MinPartSize are raised to it.
	PartSize int64
	// UploadConcurrency bounds the parts of one file in flight. Zero means 4.
	UploadConcurrency int
	// CacheSize bounds the clean blocks kept in memory, in bytes. Zero
	// means 512 MiB.
	CacheSize int64
	// BlockSize is the unit of reading and caching, in bytes. Zero means
	// 1 MiB: one GET per MiB keeps request overhead small on sequential
	// reads while a random 4 KiB read still costs one short GET.
	BlockSize int64
	// MaxReadahead bounds how far ahead of a sequential reader blocks are
	// fetched, in bytes. Zero means 32 MiB.
	MaxReadahead int64
	// PrefetchBlocks bounds the blocks being fetched ahead across all
	// files (and so readahead memory). Zero means 64.
	PrefetchBlocks int
	// Context is the lifetime of uploads (see the package doc). Zero means
	// context.Background().
	Context context.Context
	// Logger receives debug lines about uploads. Zero value: no logging.
	Logger zerolog.Logger
	// OnUpload, when set, is called after each completed upload with the
	// object as stored (the --on-upload hook, metrics). It must not block.
	OnUpload func(info store.ObjectInfo)
}

// Cache owns local copies of object data: staging files, uploads, reads.
type Cache struct {
	opts Options
	stop context.CancelFunc // ends opts.Context
	disk *DiskCache         // nil without Options.DiskCacheDir

	blocks        *lru.Cache[blockKey, []byte] // clean blocks only; safe for concurrent use
	prefetchSlots *semaphore.Weighted          // a unit per readahead block in flight
	stats         counters
	wg            sync.WaitGroup // block fetches
	workers       sync.WaitGroup // upload workers and their helpers

	mu sync.Mutex
	// inflight holds the blocks on their way from the store, so that each
	// is fetched once however many readers want it (singleflight cannot
	// let one multi-block GET complete blocks one by one). GUARDED_BY(mu)
	inflight map[blockKey]*inflight

	wmu sync.Mutex
	// pend holds the keys with committed data not yet uploaded. GUARDED_BY(wmu)
	pend map[string]*pending
	// queue is what the upload workers take next. GUARDED_BY(wmu)
	queue []*pending
	// wchange is closed (and replaced) whenever an upload changes state.
	// GUARDED_BY(wmu)
	wchange chan struct{}

	// journal is the log of pending uploads (journal.go); it has its own
	// lock.
	journal journal
}

// New checks opts, fills in defaults and creates the staging dir.
func New(opts Options) (*Cache, error) {
	if opts.Bucket == nil {
		return nil, errors.New("cache: Options.Bucket is required")
	}
	if opts.StagingDir == "" {
		return nil, errors.New("cache: Options.StagingDir is required")
	}
	if opts.MultipartThreshold <= 0 {
		opts.MultipartThreshold = 8 << 20
	}
	opts.MultipartThreshold = min(opts.MultipartThreshold, store.MaxPutSize)
	if opts.PartSize <= 0 {
		opts.PartSize = 8 << 20
	}
	opts.PartSize = min(max(opts.PartSize, store.MinPartSize), store.MaxPartSize)
	if opts.UploadConcurrency <= 0 {
		opts.UploadConcurrency = 4
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 512 << 20
	}
	if opts.BlockSize <= 0 {
		opts.BlockSize = 1 << 20
	}
	if opts.MaxReadahead <= 0 {
		opts.MaxReadahead = 32 << 20
	}
	if opts.PrefetchBlocks <= 0 {
		opts.PrefetchBlocks = 64
	}
	if opts.JournalDir == "" {
		opts.JournalDir = filepath.Join(filepath.Dir(opts.StagingDir), "journal")
	}
	if opts.MaxDirty <= 0 {
		opts.MaxDirty = 2 << 30
	}
	if opts.UploadWorkers <= 0 {
		opts.UploadWorkers = 16
	}
	for _, d := range []string{opts.StagingDir, opts.JournalDir, filepath.Join(opts.JournalDir, "streams")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cache dir: %w", err)
		}
	}
	// The workers' own context: Close ends it even when the caller's never
	// ends (tests).
	var stop context.CancelFunc
	opts.Context, stop = context.WithCancel(opts.Context)
	c := &Cache{stop: stop, opts: opts, prefetchSlots: semaphore.NewWeighted(int64(opts.PrefetchBlocks)), inflight: map[blockKey]*inflight{},
		pend: map[string]*pending{}, wchange: make(chan struct{})}
	if opts.DiskCacheDir != "" {
		if opts.DiskCacheSize <= 0 {
			opts.DiskCacheSize = 4 << 30
		}
		d, err := NewDiskCache(opts.DiskCacheDir, opts.DiskCacheSize, opts.BlockSize, opts.Logger)
		if err != nil {
			stop()
			return nil, err
		}
		c.disk, c.opts = d, opts
	}
	if err := c.newBlockLRU(); err != nil {
		stop()
		if c.disk != nil {
			c.disk.Close()
		}
		return nil, err
	}
	c.workers.Add(opts.UploadWorkers)
	for range opts.UploadWorkers {
		go c.worker()
	}
	return c, nil
}

func getOpts(etag string) store.GetOptions {
	return store.GetOptions{IfMatch: etag}
}

// Close waits for the upload workers and readahead in flight; cancel
// Options.Context first (after Drain) to end them.
func (c *Cache) Close() {
	c.stop()
	c.wmu.Lock()
	c.changed() // wake idle workers to see the context ended
	c.wmu.Unlock()
	c.wg.Wait()
	c.workers.Wait()
	c.closeJournal()
	if c.disk != nil {
		c.disk.Close()
	}
}
