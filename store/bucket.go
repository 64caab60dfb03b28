// Package store is the whole contract between ampfs and an object store.
//
// Everything above this package (cache, fs) talks to S3 only through the
// Bucket interface below, so the file system can be tested against the strict
// in-memory fake in store/memstore and run against S3 through store/s3. The
// conformance suite in store/storetest runs against both and is what makes
// the fake trustworthy.
//
// # Errors
//
// Every method returns nil or an error that wraps exactly one of the sentinel
// errors in errors.go (test with errors.Is). Implementations translate their
// native errors in one place (store/s3: translate.go); callers never look at
// SDK error types. The *OpError wrapper carries the operation, key, the
// server's error code and request id for logs.
//
// # Keys
//
// Keys are full object keys in the bucket, without a leading "/". A key that
// ends in "/" is a directory marker. Listing order is byte order of keys, as
// in S3.
package store

import (
	"context"
	"io"
	"time"
)

// S3 limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).
const (
	MinPartSize   int64 = 5 << 20 // bytes; every part but the last must be at least this
	MaxPartSize   int64 = 5 << 30 // bytes
	MaxParts            = 10000   // parts in one multipart upload
	MaxPutSize    int64 = 5 << 30 // bytes in a single PutObject
	MaxObjectSize int64 = 5 << 40 // bytes
	MaxKeyLength        = 1024    // bytes of UTF-8 in a key
	MaxListKeys         = 1000    // keys per ListObjectsV2 page
)

// ObjectInfo describes one object as the server reports it.
type ObjectInfo struct {
	Key          string
	Size         int64  // bytes
	ETag         string // without surrounding quotes
	LastModified time.Time
	// ContentType is empty when the server did not report one (List).
	ContentType string
	// Metadata holds user metadata (x-amz-meta-*) with lower-case names and
	// the prefix removed. It is nil when the call does not return metadata
	// (List); use Head to read it.
	Metadata map[string]string
}

// ListInput is one ListObjectsV2 request.
type ListInput struct {
	Prefix    string
	Delimiter string // "" for a flat listing, "/" for one directory level
	// ContinuationToken is the NextContinuationToken of the previous page,
	// or "" for the first page.
	ContinuationToken string
	// MaxKeys bounds objects plus common prefixes in the page; 0 means the
	// server's default (1000). Servers may return fewer.
	MaxKeys int
}

// ListPage is one page of a listing. Objects and CommonPrefixes are each in
// key order.
type ListPage struct {
	Objects        []ObjectInfo
	CommonPrefixes []string // full prefixes, ending in the delimiter
	// NextContinuationToken is set when IsTruncated is true.
	NextContinuationToken string
	IsTruncated           bool
}

// GetOptions qualify a GetObject.
type GetOptions struct {
	// IfMatch, when set, makes the read fail with ErrPreconditionFailed if
	// the object's ETag is different, so a read never mixes two versions.
	IfMatch string
}

// PutOptions qualify a new object (PutObject, CreateMultipartUpload).
type PutOptions struct {
	ContentType string            // "" lets the store choose
	Metadata    map[string]string // user metadata, lower-case names without x-amz-meta-
}

// CopyOptions qualify a server-side copy.
type CopyOptions struct {
	// IfMatch, when set, makes the copy fail with ErrPreconditionFailed if
	// the source's ETag differs.
	IfMatch string
	// ReplaceMetadata replaces the user metadata and content type with the
	// ones below (S3's MetadataDirective REPLACE); otherwise they are copied.
	ReplaceMetadata bool
	ContentType     string
	Metadata        map[string]string
}

// Part is one uploaded part of a multipart upload.
type Part struct {
	Number int32 // 1..MaxParts
	ETag   string
	Size   int64 // bytes
}

// Bucket is one S3 bucket. Implementations are safe for concurrent use.
// Each method's error wraps one of the sentinels in errors.go; the ones a
// caller is expected to handle are listed per method.
type Bucket interface {
	// Name returns the bucket's name.
	Name() string

	// Check verifies that the bucket exists and the credentials may use it
	// (HeadBucket). ErrNoSuchBucket, ErrBadCredentials, ErrAccessDenied,
	// ErrUnavailable.
	Check(ctx context.Context) error

	// Head returns an object's info including user metadata.
	// ErrNotFound when there is no object with exactly this key.
	Head(ctx context.Context, key string) (ObjectInfo, error)

	// List returns one page of ListObjectsV2.
	List(ctx context.Context, in ListInput) (ListPage, error)

	// Get returns length bytes of the object starting at off; length < 0
	// means to the end. The returned info describes the whole object (Size
	// is the object's size, not the range's). Reading at or past the end of
	// a non-empty object gives ErrInvalidRange; any range of an empty object
	// gives an empty body. ErrNotFound, ErrPreconditionFailed (IfMatch).
	// The caller closes the body.
	Get(ctx context.Context, key string, off, length int64, opts GetOptions) (io.ReadCloser, ObjectInfo, error)

	// Put stores size bytes read from body as the object key, replacing any
	// object there. size may be at most MaxPutSize. body may be read more
	// than once (retries seek it back to the start).
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) (ObjectInfo, error)

	// Delete removes the object key. Deleting a key that does not exist is
	// not an error (S3 semantics).
	Delete(ctx context.Context, key string) error

	// Copy copies src to dst on the server (CopyObject; objects up to
	// MaxPutSize). ErrNotFound when src is missing, ErrPreconditionFailed.
	Copy(ctx context.Context, src, dst string, opts CopyOptions) (ObjectInfo, error)

	// CreateMultipartUpload starts a multipart upload and returns its id.
	CreateMultipartUpload(ctx context.Context, key string, opts PutOptions) (uploadID string, err error)

	// UploadPart uploads part number n (1..MaxParts) of size bytes. Every
	// part but the last must be at least MinPartSize; the store may only
	// find out at completion (ErrInvalidArgument). ErrNoSuchUpload.
	UploadPart(ctx context.Context, key, uploadID string, n int32, body io.ReadSeeker, size int64) (Part, error)

	// UploadPartCopy makes part number n (1..MaxParts) of the upload
	// from size bytes of the object srcKey starting at off, copied on the
	// server (x-amz-copy-source-range): no data passes through the caller.
	// srcETag, when set, is a precondition on the source
	// (x-amz-copy-source-if-match). The part's limits are UploadPart's:
	// size is 1..MaxPartSize, and every part but the last must be at
	// least MinPartSize (the store may only find out at completion).
	// ErrNoSuchUpload, ErrNotFound (no object srcKey),
	// ErrPreconditionFailed (srcKey's ETag is not srcETag),
	// ErrInvalidRange (the range ends past the source's end).
	UploadPartCopy(ctx context.Context, key, uploadID string, n int32, srcKey, srcETag string, off, size int64) (Part, error)

	// CompleteMultipartUpload assembles the listed parts, in ascending
	// part-number order, into the object. ErrNoSuchUpload,
	// ErrInvalidArgument (a part too small, missing or with a wrong ETag).
	CompleteMultipartUpload(ctx context.Context, key, uploadID string, parts []Part) (ObjectInfo, error)

	// AbortMultipartUpload discards an upload and its parts.
	// ErrNoSuchUpload when it is already gone.
	AbortMultipartUpload(ctx context.Context, key, uploadID string) error
}
