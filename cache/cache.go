package cache

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/rs/zerolog"

	"github.com/ampfs/ampfs/store"
)

// Options configure a Cache. Each field documents its zero-value default.
type Options struct {
	// Bucket is the object store. Required.
	Bucket store.Bucket
	// StagingDir holds staging files; it is created if missing. Required.
	StagingDir string
	// MultipartThreshold: files of at least this many bytes go up as a
	// multipart upload. Zero means 8 MiB. Never more than store.MaxPutSize.
	MultipartThreshold int64
	// PartSize is the smallest part size in bytes; it grows for large files
	// so they fit in store.MaxParts parts. Zero means 8 MiB; values below
	// store.MinPartSize are raised to it.
	PartSize int64
	// UploadConcurrency bounds the parts of one file in flight. Zero means 4.
	UploadConcurrency int
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
	if err := os.MkdirAll(opts.StagingDir, 0o700); err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	return &Cache{opts: opts}, nil
}

func getOpts(etag string) store.GetOptions {
	return store.GetOptions{IfMatch: etag}
}
