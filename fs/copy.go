package fs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ampfs/ampfs/cache"
	"github.com/ampfs/ampfs/store"
)

// Renames copy objects on the server. CopyObject takes sources up to
// 5 GiB (Options.MaxCopySize); a larger object is copied as a multipart
// upload whose parts are ranges of it (UploadPartCopy), all pinned to the
// ETag it had when the copy started, so the copy is of one version or
// fails.

// copyPartSize is the smallest part of a multipart copy: big parts, since
// no byte passes through the mount, few enough to run in parallel.
const copyPartSize = 512 << 20

// copyParallel bounds the parts of one multipart copy in flight.
const copyParallel = 4

// copyObject copies src (its Key and Size, as last seen) to dst with its
// content type and metadata; ifMatch, when set, is the ETag it must have
// (ErrPreconditionFailed otherwise).
func (fsys *FS) copyObject(ctx context.Context, src store.ObjectInfo, dst, ifMatch string) (store.ObjectInfo, error) {
	if src.Size <= fsys.opts.MaxCopySize {
		info, err := fsys.bucket.Copy(ctx, src.Key, dst, store.CopyOptions{IfMatch: ifMatch})
		if err == nil || !errors.Is(err, store.ErrTooLarge) {
			return info, err
		}
		// It grew past CopyObject's limit since it was seen.
	}
	return fsys.copyMultipart(ctx, src.Key, dst, ifMatch)
}

// copyMultipart copies src to dst with UploadPartCopy.
func (fsys *FS) copyMultipart(ctx context.Context, src, dst, ifMatch string) (store.ObjectInfo, error) {
	start := time.Now()
	head, err := fsys.bucket.Head(ctx, src)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	if ifMatch != "" && head.ETag != ifMatch {
		return store.ObjectInfo{}, store.Errorf(store.ErrPreconditionFailed, store.OpUploadPartCopy, src, "ETag is %s, not %s", head.ETag, ifMatch)
	}
	size := head.Size
	if size <= fsys.opts.MaxCopySize {
		// It shrank since it was seen.
		return fsys.bucket.Copy(ctx, src, dst, store.CopyOptions{IfMatch: head.ETag})
	}
	partSize := cache.PartSize(size, min(copyPartSize, max(fsys.opts.MaxCopySize, store.MinPartSize)))
	id, err := fsys.bucket.CreateMultipartUpload(ctx, dst, store.PutOptions{ContentType: head.ContentType, Metadata: head.Metadata})
	if err != nil {
		return store.ObjectInfo{}, err
	}
	n := int((size + partSize - 1) / partSize)
	parts := make([]store.Part, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(copyParallel)
	for i := range n {
		off := int64(i) * partSize
		g.Go(func() error {
			p, err := fsys.bucket.UploadPartCopy(gctx, dst, id, int32(i+1), src, head.ETag, off, min(partSize, size-off))
			if err != nil {
				return fmt.Errorf("copying part %d of %s: %w", i+1, src, err)
			}
			parts[i] = p
			return nil
		})
	}
	err = g.Wait()
	var info store.ObjectInfo
	if err == nil {
		info, err = fsys.bucket.CompleteMultipartUpload(ctx, dst, id, parts)
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if aerr := fsys.bucket.AbortMultipartUpload(actx, dst, id); aerr != nil {
			fsys.log.Warn().Str("op", "abort").Str("key", dst).Str("upload_id", id).Err(aerr).Msg("could not abort a failed multipart copy")
		}
		return store.ObjectInfo{}, err
	}
	info.Key, info.Size, info.ContentType, info.Metadata = dst, size, head.ContentType, head.Metadata
	fsys.log.Debug().Str("op", "copy").Str("src", src).Str("key", dst).Int64("len", size).Int("part", n).
		Dur("dur", time.Since(start)).Msg("copied in parts")
	return info, nil
}
