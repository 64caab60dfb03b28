package cache

import (
	"context"
	"fmt"
	"io"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ampfs/ampfs/store"
)

// abortTimeout bounds the clean-up of a failed multipart upload, which runs
// on a fresh context because the upload's own may be what ended.
const abortTimeout = 30 * time.Second

// Upload writes the current contents of s to key. On success s is marked
// clean unless it changed during the upload (then it stays dirty and the
// caller uploads again). It runs under the Cache's context, not the
// caller's (see the package doc), but returns early with ctx's error if the
// caller gives up waiting.
func (c *Cache) Upload(ctx context.Context, key string, s *Staged, opts store.PutOptions) (store.ObjectInfo, error) {
	return c.uploadStaged(ctx, key, s, opts, nil)
}

// uploadStaged is Upload; onID, when set, learns a multipart upload's id
// as soon as it exists (the journal keeps it, to abort it after a crash).
func (c *Cache) uploadStaged(ctx context.Context, key string, s *Staged, opts store.PutOptions, onID func(string)) (store.ObjectInfo, error) {
	gen, size := s.snapshot()
	type result struct {
		info store.ObjectInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var info store.ObjectInfo
		var err error
		streamed := false
		if st := s.takeStream(); st != nil {
			info, streamed, err = st.finish(c.opts.Context, s.f, key, size)
		}
		if !streamed {
			info, err = c.upload(c.opts.Context, key, s.f, size, opts, onID)
		}
		done <- result{info, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return store.ObjectInfo{}, r.err
		}
		s.markClean(gen)
		// Put and CompleteMultipartUpload do not report all of these.
		r.info.Key, r.info.Size = key, size
		if r.info.LastModified.IsZero() {
			r.info.LastModified = time.Now()
		}
		if c.opts.OnUpload != nil {
			c.opts.OnUpload(r.info)
		}
		return r.info, nil
	case <-ctx.Done():
		return store.ObjectInfo{}, ctx.Err()
	}
}

// upload sends size bytes of r to key: one PutObject, or a multipart upload
// from MultipartThreshold on.
func (c *Cache) upload(ctx context.Context, key string, r io.ReaderAt, size int64, opts store.PutOptions, onID func(string)) (store.ObjectInfo, error) {
	start := time.Now()
	if size < c.opts.MultipartThreshold {
		info, err := c.opts.Bucket.Put(ctx, key, io.NewSectionReader(r, 0, size), size, opts)
		if err == nil {
			c.opts.Logger.Debug().Str("op", "put").Str("key", key).Int64("len", size).Dur("dur", time.Since(start)).Msg("uploaded")
		}
		return info, err
	}
	if size > store.MaxObjectSize {
		return store.ObjectInfo{}, store.Errorf(store.ErrTooLarge, "Upload", key, "%d bytes is over S3's object size limit", size)
	}
	partSize := PartSize(size, c.opts.PartSize)
	id, err := c.opts.Bucket.CreateMultipartUpload(ctx, key, opts)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	if onID != nil {
		onID(id)
	}
	nparts := int((size + partSize - 1) / partSize)
	parts := make([]store.Part, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.UploadConcurrency)
	for i := range nparts {
		off := int64(i) * partSize
		n := min(partSize, size-off)
		g.Go(func() error {
			p, err := c.opts.Bucket.UploadPart(gctx, key, id, int32(i+1), io.NewSectionReader(r, off, n), n)
			if err != nil {
				return fmt.Errorf("part %d: %w", i+1, err)
			}
			parts[i] = p
			return nil
		})
	}
	err = g.Wait()
	var info store.ObjectInfo
	if err == nil {
		info, err = c.opts.Bucket.CompleteMultipartUpload(ctx, key, id, parts)
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if aerr := c.opts.Bucket.AbortMultipartUpload(actx, key, id); aerr != nil {
			c.opts.Logger.Warn().Str("op", "abort").Str("key", key).Str("upload_id", id).Err(aerr).Msg("could not abort failed multipart upload")
		}
		return store.ObjectInfo{}, err
	}
	c.opts.Logger.Debug().Str("op", "multipart").Str("key", key).Int64("len", size).
		Int("part", nparts).Dur("dur", time.Since(start)).Msg("uploaded")
	return info, nil
}

// PartSize returns the part size for an object of size bytes: at least
// min, a whole number of MiB, and large enough that the object fits in
// store.MaxParts parts.
func PartSize(size, minSize int64) int64 {
	const mib = 1 << 20
	need := (size + store.MaxParts - 1) / store.MaxParts
	p := max(minSize, need, store.MinPartSize)
	return (p + mib - 1) / mib * mib
}
