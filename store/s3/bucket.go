package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/ampfs/ampfs/store"
)

// fail translates err and logs it at debug level; the caller decides
// whether it is worth more.
func (b *Bucket) fail(ctx context.Context, op, key string, err error) error {
	terr := translate(ctx, op, key, err)
	if e := b.log.Debug(); e.Enabled() {
		var oe *store.OpError
		if errors.As(terr, &oe) {
			e = e.Str("code", oe.Code).Str("request_id", oe.RequestID)
		}
		e.Str("op", op).Str("key", key).Err(terr).Msg("s3 request failed")
	}
	return terr
}

func checkKey(op, key string) error {
	if key == "" {
		return store.Errorf(store.ErrInvalidArgument, op, key, "empty key")
	}
	if len(key) > store.MaxKeyLength {
		return &store.OpError{Op: op, Key: key, Code: "KeyTooLongError", Kind: store.ErrInvalidArgument,
			Err: fmt.Errorf("key is %d bytes, more than %d", len(key), store.MaxKeyLength)}
	}
	return nil
}

func checkUploadID(op, key, id string) error {
	if id == "" {
		// The SDK would refuse to send it; S3 would not know it.
		return store.Errorf(store.ErrNoSuchUpload, op, key, "empty upload id")
	}
	return nil
}

// unquote strips the quotes S3 puts around ETags.
func unquote(etag *string) string {
	return strings.Trim(aws.ToString(etag), `"`)
}

func quote(etag string) *string {
	return aws.String(`"` + strings.Trim(etag, `"`) + `"`)
}

func lowerMeta(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// serverTime is the response's Date header: the server's clock when it
// stored the object, for responses that carry no Last-Modified.
func serverTime(md middleware.Metadata) time.Time {
	if t, ok := awsmiddleware.GetServerTime(md); ok {
		return t.UTC()
	}
	return time.Now().UTC()
}

// Check implements store.Bucket.
func (b *Bucket) Check(ctx context.Context) error {
	_, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.bucket)})
	if err == nil {
		return nil
	}
	terr := b.fail(ctx, opHeadBucket, "", err)
	if !errors.Is(terr, store.ErrAccessDenied) && !errors.Is(terr, store.ErrNoSuchBucket) &&
		!errors.Is(terr, store.ErrInvalidArgument) && !errors.Is(terr, store.ErrBadCredentials) {
		return terr
	}
	// A HEAD response has no body, so a 403 cannot say whether the
	// credentials are unknown or merely not allowed. A list of one key has
	// an error body with the code.
	_, lerr := b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b.bucket), MaxKeys: aws.Int32(1)})
	if lerr == nil {
		// HeadBucket is denied but listing works (a policy may allow
		// one without the other): the bucket is usable.
		return nil
	}
	lterr := b.fail(ctx, opHeadBucket, "", lerr)
	var oe *store.OpError
	if errors.As(lterr, &oe) && oe.Code != "" && oe.Code != "Forbidden" && oe.Code != "NotFound" {
		return lterr
	}
	return terr
}

// Head implements store.Bucket.
func (b *Bucket) Head(ctx context.Context, key string) (store.ObjectInfo, error) {
	return b.head(ctx, opHeadObject, key, "")
}

func (b *Bucket) head(ctx context.Context, op, key, ifMatch string) (store.ObjectInfo, error) {
	if err := checkKey(op, key); err != nil {
		return store.ObjectInfo{}, err
	}
	in := &s3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)}
	if ifMatch != "" {
		in.IfMatch = quote(ifMatch)
	}
	out, err := b.client.HeadObject(ctx, in)
	if err != nil {
		return store.ObjectInfo{}, b.fail(ctx, op, key, err)
	}
	return store.ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         unquote(out.ETag),
		LastModified: aws.ToTime(out.LastModified).UTC(),
		ContentType:  aws.ToString(out.ContentType),
		Metadata:     lowerMeta(out.Metadata),
	}, nil
}

// Get implements store.Bucket.
func (b *Bucket) Get(ctx context.Context, key string, off, length int64, opts store.GetOptions) (io.ReadCloser, store.ObjectInfo, error) {
	if err := checkKey(opGetObject, key); err != nil {
		return nil, store.ObjectInfo{}, err
	}
	if off < 0 {
		return nil, store.ObjectInfo{}, store.Errorf(store.ErrInvalidArgument, opGetObject, key, "negative offset %d", off)
	}
	if length == 0 {
		// HTTP cannot ask for zero bytes.
		return b.emptyGet(ctx, key, off, opts, nil)
	}
	in := &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)}
	if opts.IfMatch != "" {
		in.IfMatch = quote(opts.IfMatch)
	}
	ranged := off > 0 || length > 0
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		terr := b.fail(ctx, opGetObject, key, err)
		if errors.Is(terr, store.ErrInvalidRange) {
			// S3 refuses every range of an empty object.
			return b.emptyGet(ctx, key, off, opts, terr)
		}
		return nil, store.ObjectInfo{}, terr
	}
	fi := store.ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         unquote(out.ETag),
		LastModified: aws.ToTime(out.LastModified).UTC(),
		ContentType:  aws.ToString(out.ContentType),
		Metadata:     lowerMeta(out.Metadata),
	}
	if !ranged {
		return out.Body, fi, nil
	}
	if total, ok := contentRangeTotal(aws.ToString(out.ContentRange)); ok {
		fi.Size = total
		return out.Body, fi, nil
	}
	// A 200 with the whole object: the server ignored the Range header.
	// Cut the range out here so the caller sees S3 semantics.
	if off >= fi.Size && fi.Size > 0 {
		out.Body.Close()
		return nil, store.ObjectInfo{}, &store.OpError{Op: opGetObject, Key: key, Code: "InvalidRange", Kind: store.ErrInvalidRange,
			Err: fmt.Errorf("offset %d of a %d-byte object", off, fi.Size)}
	}
	if _, err := io.CopyN(io.Discard, out.Body, min(off, fi.Size)); err != nil {
		out.Body.Close()
		return nil, store.ObjectInfo{}, b.fail(ctx, opGetObject, key, err)
	}
	var r io.Reader = out.Body
	if length > 0 {
		r = io.LimitReader(out.Body, length)
	}
	return readCloser{r, out.Body}, fi, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// contentRangeTotal parses the object size out of "bytes a-b/size".
func contentRangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if !strings.HasPrefix(cr, "bytes ") || i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return n, err == nil
}

// emptyGet answers a Get that needs no bytes from the server: a zero
// length, or a range S3 refused (rangeErr), which is fine on an empty
// object.
func (b *Bucket) emptyGet(ctx context.Context, key string, off int64, opts store.GetOptions, rangeErr error) (io.ReadCloser, store.ObjectInfo, error) {
	fi, err := b.head(ctx, opGetObject, key, opts.IfMatch)
	if err != nil {
		return nil, store.ObjectInfo{}, err
	}
	if fi.Size > 0 && off >= fi.Size {
		if rangeErr == nil {
			rangeErr = &store.OpError{Op: opGetObject, Key: key, Code: "InvalidRange", Kind: store.ErrInvalidRange,
				Err: fmt.Errorf("offset %d of a %d-byte object", off, fi.Size)}
		}
		return nil, store.ObjectInfo{}, rangeErr
	}
	if rangeErr != nil && fi.Size > 0 {
		// The object grew between the GET and the HEAD; report the GET.
		return nil, store.ObjectInfo{}, rangeErr
	}
	return io.NopCloser(bytes.NewReader(nil)), fi, nil
}

// Put implements store.Bucket.
func (b *Bucket) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := checkKey(opPutObject, key); err != nil {
		return store.ObjectInfo{}, err
	}
	if size > store.MaxPutSize {
		return store.ObjectInfo{}, &store.OpError{Op: opPutObject, Key: key, Code: "EntityTooLarge", Kind: store.ErrTooLarge,
			Err: fmt.Errorf("%d bytes, more than %d", size, store.MaxPutSize)}
	}
	if size < 0 {
		return store.ObjectInfo{}, store.Errorf(store.ErrInvalidArgument, opPutObject, key, "negative size %d", size)
	}
	if body == nil {
		body = bytes.NewReader(nil)
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(key),
		Body:          body,
		ContentLength: aws.Int64(size),
		Metadata:      opts.Metadata,
	}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		return store.ObjectInfo{}, b.fail(ctx, opPutObject, key, err)
	}
	return store.ObjectInfo{
		Key:          key,
		Size:         size,
		ETag:         unquote(out.ETag),
		LastModified: serverTime(out.ResultMetadata),
		ContentType:  opts.ContentType,
		Metadata:     lowerMeta(opts.Metadata),
	}, nil
}

// Delete implements store.Bucket.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := checkKey(opDeleteObject, key); err != nil {
		return err
	}
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil {
		err = b.fail(ctx, opDeleteObject, key, err)
		if errors.Is(err, store.ErrNotFound) {
			// S3 answers 204 for a missing key; some servers say 404.
			return nil
		}
		return err
	}
	return nil
}

// Copy implements store.Bucket. It heads the source first and copies only
// that version (x-amz-copy-source-if-match), so the returned size and
// metadata are those of the new object.
func (b *Bucket) Copy(ctx context.Context, src, dst string, opts store.CopyOptions) (store.ObjectInfo, error) {
	if err := checkKey(opCopyObject, src); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := checkKey(opCopyObject, dst); err != nil {
		return store.ObjectInfo{}, err
	}
	if src == dst && !opts.ReplaceMetadata {
		// S3 rejects it ("trying to copy an object to itself without
		// changing the object's metadata"); not every server does.
		return store.ObjectInfo{}, &store.OpError{Op: opCopyObject, Key: src, Code: "InvalidRequest", Kind: store.ErrInvalidArgument,
			Err: errors.New("copy onto itself without replacing metadata")}
	}
	// The source may change between the HEAD and the copy; without the
	// caller's IfMatch that is no failure, so try again with the new one.
	const attempts = 3
	for i := 1; ; i++ {
		fi, err := b.copyOnce(ctx, src, dst, opts)
		if err == nil || opts.IfMatch != "" || i == attempts || !errors.Is(err, store.ErrPreconditionFailed) {
			return fi, err
		}
	}
}

func (b *Bucket) copyOnce(ctx context.Context, src, dst string, opts store.CopyOptions) (store.ObjectInfo, error) {
	si, err := b.head(ctx, opCopyObject, src, opts.IfMatch)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	if si.Size > store.MaxPutSize {
		return store.ObjectInfo{}, &store.OpError{Op: opCopyObject, Key: src, Code: "InvalidRequest", Kind: store.ErrTooLarge,
			Err: fmt.Errorf("source is %d bytes, more than %d", si.Size, store.MaxPutSize)}
	}
	in := &s3.CopyObjectInput{
		Bucket:            aws.String(b.bucket),
		Key:               aws.String(dst),
		CopySource:        aws.String(escapePath(b.bucket + "/" + src)),
		CopySourceIfMatch: quote(si.ETag),
	}
	fi := store.ObjectInfo{Key: dst, Size: si.Size, ContentType: si.ContentType, Metadata: si.Metadata}
	if opts.ReplaceMetadata {
		in.MetadataDirective = types.MetadataDirectiveReplace
		in.Metadata = opts.Metadata
		if opts.ContentType != "" {
			in.ContentType = aws.String(opts.ContentType)
		}
		fi.ContentType = opts.ContentType
		fi.Metadata = lowerMeta(opts.Metadata)
	}
	out, err := b.client.CopyObject(ctx, in)
	if err != nil {
		return store.ObjectInfo{}, b.fail(ctx, opCopyObject, src, err)
	}
	if r := out.CopyObjectResult; r != nil {
		fi.ETag = unquote(r.ETag)
		fi.LastModified = aws.ToTime(r.LastModified).UTC()
	}
	if fi.LastModified.IsZero() {
		fi.LastModified = serverTime(out.ResultMetadata)
	}
	return fi, nil
}

// escapePath percent-encodes all but unreserved characters and "/", as
// x-amz-copy-source must be; url.PathEscape would leave "+", which S3
// decodes as a space.
func escapePath(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// CreateMultipartUpload implements store.Bucket.
func (b *Bucket) CreateMultipartUpload(ctx context.Context, key string, opts store.PutOptions) (string, error) {
	if err := checkKey(opCreateMultipartUpload, key); err != nil {
		return "", err
	}
	in := &s3.CreateMultipartUploadInput{
		Bucket:   aws.String(b.bucket),
		Key:      aws.String(key),
		Metadata: opts.Metadata,
	}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	out, err := b.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return "", b.fail(ctx, opCreateMultipartUpload, key, err)
	}
	if aws.ToString(out.UploadId) == "" {
		return "", store.Errorf(store.ErrUnavailable, opCreateMultipartUpload, key, "server returned no upload id")
	}
	return aws.ToString(out.UploadId), nil
}

// UploadPart implements store.Bucket.
func (b *Bucket) UploadPart(ctx context.Context, key, uploadID string, n int32, body io.ReadSeeker, size int64) (store.Part, error) {
	if err := checkKey(opUploadPart, key); err != nil {
		return store.Part{}, err
	}
	if err := checkUploadID(opUploadPart, key, uploadID); err != nil {
		return store.Part{}, err
	}
	if n < 1 || n > store.MaxParts {
		return store.Part{}, &store.OpError{Op: opUploadPart, Key: key, Code: "InvalidArgument", Kind: store.ErrInvalidArgument,
			Err: fmt.Errorf("part number %d not in 1..%d", n, store.MaxParts)}
	}
	if size > store.MaxPartSize {
		return store.Part{}, &store.OpError{Op: opUploadPart, Key: key, Code: "EntityTooLarge", Kind: store.ErrTooLarge,
			Err: fmt.Errorf("part is %d bytes, more than %d", size, store.MaxPartSize)}
	}
	if size < 0 {
		return store.Part{}, store.Errorf(store.ErrInvalidArgument, opUploadPart, key, "negative size %d", size)
	}
	if body == nil {
		body = bytes.NewReader(nil)
	}
	out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(key),
		UploadId:      aws.String(uploadID),
		PartNumber:    aws.Int32(n),
		Body:          body,
		ContentLength: aws.Int64(size),
	})
	if err != nil {
		return store.Part{}, b.fail(ctx, opUploadPart, key, err)
	}
	return store.Part{Number: n, ETag: unquote(out.ETag), Size: size}, nil
}

// UploadPartCopy implements store.Bucket.
func (b *Bucket) UploadPartCopy(ctx context.Context, key, uploadID string, n int32, srcKey, srcETag string, off, size int64) (store.Part, error) {
	const op = opUploadPartCopy
	if err := checkKey(op, key); err != nil {
		return store.Part{}, err
	}
	if err := checkKey(op, srcKey); err != nil {
		return store.Part{}, err
	}
	if err := checkUploadID(op, key, uploadID); err != nil {
		return store.Part{}, err
	}
	if err := store.CheckPartCopy(op, key, n, off, size); err != nil {
		return store.Part{}, err
	}
	in := &s3.UploadPartCopyInput{
		Bucket:          aws.String(b.bucket),
		Key:             aws.String(key),
		UploadId:        aws.String(uploadID),
		PartNumber:      aws.Int32(n),
		CopySource:      aws.String(escapePath(b.bucket + "/" + srcKey)),
		CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+size-1)),
	}
	if srcETag != "" {
		in.CopySourceIfMatch = quote(srcETag)
	}
	out, err := b.client.UploadPartCopy(ctx, in)
	if err != nil {
		return store.Part{}, b.fail(ctx, op, key, err)
	}
	var etag string
	if out.CopyPartResult != nil {
		etag = unquote(out.CopyPartResult.ETag)
	}
	if etag == "" {
		return store.Part{}, store.Errorf(store.ErrUnavailable, op, key, "server returned no ETag for the copied part")
	}
	return store.Part{Number: n, ETag: etag, Size: size}, nil
}

// CompleteMultipartUpload implements store.Bucket. The returned Size is
// the sum of the listed parts' Size; content type and metadata are not
// reported (S3 does not return them).
func (b *Bucket) CompleteMultipartUpload(ctx context.Context, key, uploadID string, parts []store.Part) (store.ObjectInfo, error) {
	const op = opCompleteMultipartUpload
	if err := checkKey(op, key); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := checkUploadID(op, key, uploadID); err != nil {
		return store.ObjectInfo{}, err
	}
	if len(parts) == 0 {
		// S3 answers MalformedXML; say what is wrong.
		return store.ObjectInfo{}, &store.OpError{Op: op, Key: key, Code: "MalformedXML", Kind: store.ErrInvalidArgument,
			Err: errors.New("no parts")}
	}
	var size int64
	completed := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: quote(p.ETag)}
		size += p.Size
	}
	out, err := b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(b.bucket),
		Key:             aws.String(key),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	if err != nil {
		return store.ObjectInfo{}, b.fail(ctx, op, key, err)
	}
	return store.ObjectInfo{
		Key:          key,
		Size:         size,
		ETag:         unquote(out.ETag),
		LastModified: serverTime(out.ResultMetadata),
	}, nil
}

// AbortMultipartUpload implements store.Bucket.
func (b *Bucket) AbortMultipartUpload(ctx context.Context, key, uploadID string) error {
	if err := checkKey(opAbortMultipartUpload, key); err != nil {
		return err
	}
	if err := checkUploadID(opAbortMultipartUpload, key, uploadID); err != nil {
		return err
	}
	_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(b.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
	})
	if err != nil {
		return b.fail(ctx, opAbortMultipartUpload, key, err)
	}
	return nil
}

// List implements store.Bucket.
func (b *Bucket) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	if in.MaxKeys < 0 {
		return store.ListPage{}, store.Errorf(store.ErrInvalidArgument, opListObjectsV2, in.Prefix, "negative MaxKeys %d", in.MaxKeys)
	}
	req := &s3.ListObjectsV2Input{Bucket: aws.String(b.bucket)}
	if in.Prefix != "" {
		req.Prefix = aws.String(in.Prefix)
	}
	if in.Delimiter != "" {
		req.Delimiter = aws.String(in.Delimiter)
	}
	if in.ContinuationToken != "" {
		req.ContinuationToken = aws.String(in.ContinuationToken)
	}
	if in.MaxKeys > 0 {
		req.MaxKeys = aws.Int32(int32(min(in.MaxKeys, store.MaxListKeys)))
	}
	out, err := b.client.ListObjectsV2(ctx, req)
	if err != nil {
		return store.ListPage{}, b.fail(ctx, opListObjectsV2, in.Prefix, err)
	}
	page := store.ListPage{
		Objects:     make([]store.ObjectInfo, 0, len(out.Contents)),
		IsTruncated: aws.ToBool(out.IsTruncated),
	}
	for _, o := range out.Contents {
		page.Objects = append(page.Objects, store.ObjectInfo{
			Key:          aws.ToString(o.Key),
			Size:         aws.ToInt64(o.Size),
			ETag:         unquote(o.ETag),
			LastModified: aws.ToTime(o.LastModified).UTC(),
		})
	}
	for _, p := range out.CommonPrefixes {
		page.CommonPrefixes = append(page.CommonPrefixes, aws.ToString(p.Prefix))
	}
	if page.IsTruncated {
		page.NextContinuationToken = aws.ToString(out.NextContinuationToken)
		if page.NextContinuationToken == "" {
			// Following this page would restart the listing forever.
			return store.ListPage{}, store.Errorf(store.ErrUnavailable, opListObjectsV2, in.Prefix, "truncated page without a continuation token")
		}
	}
	return page, nil
}
