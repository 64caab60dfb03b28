package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
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
	gen, size, src, t := s.startUpload()
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
			info, err = c.upload(c.opts.Context, key, s.f, size, opts, onID, src)
		}
		if err == nil {
			info.Key = key
			s.endUpload(t, &info)
		} else {
			s.endUpload(t, nil)
		}
		done <- result{info, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return store.ObjectInfo{}, r.err
		}
		if s.markClean(gen) {
			s.noteUploaded(gen, key, r.info.ETag)
		}
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
// from MultipartThreshold on, whose parts lying in src's untouched ranges
// are copied from it on the server (src may be nil; see copyplan.go).
func (c *Cache) upload(ctx context.Context, key string, r io.ReaderAt, size int64, opts store.PutOptions, onID func(string), src *copySource) (store.ObjectInfo, error) {
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
	plan := planParts(size, partSize, src)
	id, err := c.opts.Bucket.CreateMultipartUpload(ctx, key, opts)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	if onID != nil {
		onID(id)
	}
	parts := make([]store.Part, len(plan))
	var (
		copied, fellBack atomic.Int64 // bytes
		srcGone          atomic.Bool  // the source changed or went: copy no more
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.UploadConcurrency)
	for i, pp := range plan {
		num := int32(i + 1)
		g.Go(func() error {
			if pp.copy && !srcGone.Load() {
				p, err := c.opts.Bucket.UploadPartCopy(gctx, key, id, num, src.key, src.etag, pp.off, pp.size)
				if err == nil {
					parts[i] = p
					copied.Add(pp.size)
					return nil
				}
				if gctx.Err() != nil {
					return fmt.Errorf("part %d: %w", num, err)
				}
				if errors.Is(err, store.ErrPreconditionFailed) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidRange) {
					srcGone.Store(true)
				}
				// The staging file has these bytes too.
				fellBack.Add(pp.size)
				c.opts.Logger.Debug().Str("op", "copy").Str("key", key).Str("src", src.key).Str("src_etag", src.etag).
					Int32("part", num).Int64("off", pp.off).Int64("len", pp.size).Err(err).Msg("copying a part failed; sending it")
			}
			p, err := c.opts.Bucket.UploadPart(gctx, key, id, num, io.NewSectionReader(r, pp.off, pp.size), pp.size)
			if err != nil {
				return fmt.Errorf("part %d: %w", num, err)
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
	e := c.opts.Logger.Debug().Str("op", "multipart").Str("key", key).Int64("len", size).Int("part", len(plan))
	if src != nil {
		e = e.Str("src", src.key).Int64("copied", copied.Load()).Int64("copy_failed", fellBack.Load())
	}
	e.Dur("dur", time.Since(start)).Msg("uploaded")
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
