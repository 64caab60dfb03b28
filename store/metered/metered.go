// Package metered decorates a store.Bucket with an Observer that sees every
// call: its S3 operation, how long it took and how it failed. The mount's
// Prometheus metrics (internal/metrics) are one Observer.
//
// Durations are those of the store call, retries included; for Get that is
// the time to the response headers, not to the end of the body (the body's
// bytes are reported as they are read).
package metered

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/ampfs/ampfs/store"
)

// Observer receives what the decorator measures. Its methods are called
// concurrently and must not block.
type Observer interface {
	// Request reports one completed call of op (an S3 operation name such
	// as "GetObject"); err is nil or a store error.
	Request(op string, dur time.Duration, err error)
	// Bytes reports body bytes sent (upload) or received (download).
	Bytes(op string, n int64, upload bool)
}

// S3 operation names, as the calls are labelled.
const (
	OpHeadBucket              = store.OpHeadBucket
	OpHeadObject              = store.OpHeadObject
	OpListObjectsV2           = store.OpListObjectsV2
	OpGetObject               = store.OpGetObject
	OpPutObject               = store.OpPutObject
	OpDeleteObject            = store.OpDeleteObject
	OpCopyObject              = store.OpCopyObject
	OpCreateMultipartUpload   = store.OpCreateMultipartUpload
	OpUploadPart              = store.OpUploadPart
	OpUploadPartCopy          = store.OpUploadPartCopy
	OpCompleteMultipartUpload = store.OpCompleteMultipartUpload
	OpAbortMultipartUpload    = store.OpAbortMultipartUpload
)

// Ops lists every operation name the decorator reports.
var Ops = []string{
	OpHeadBucket, OpHeadObject, OpListObjectsV2, OpGetObject, OpPutObject, OpDeleteObject,
	OpCopyObject, OpCreateMultipartUpload, OpUploadPart, OpUploadPartCopy, OpCompleteMultipartUpload, OpAbortMultipartUpload,
}

// kinds maps each store sentinel to a metric label.
var kinds = []struct {
	err   error
	label string
}{
	{store.ErrNotFound, "not_found"},
	{store.ErrNoSuchBucket, "no_such_bucket"},
	{store.ErrNoSuchUpload, "no_such_upload"},
	{store.ErrAccessDenied, "access_denied"},
	{store.ErrBadCredentials, "bad_credentials"},
	{store.ErrPreconditionFailed, "precondition_failed"},
	{store.ErrInvalidRange, "invalid_range"},
	{store.ErrInvalidArgument, "invalid_argument"},
	{store.ErrTooLarge, "too_large"},
	{store.ErrUnavailable, "unavailable"},
	{store.ErrCanceled, "canceled"},
}

// Kind names the kind of a store error for a metric label: "not_found",
// "access_denied", ... "canceled" also for a bare context error, "other"
// for an error that wraps no sentinel (a bug in the store).
func Kind(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.label
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	return "other"
}

// Bucket is the decorated store.Bucket.
type Bucket struct {
	b   store.Bucket
	obs Observer
	now func() time.Time
}

var _ store.Bucket = (*Bucket)(nil)

// New wraps b. now is the clock; nil means time.Now.
func New(b store.Bucket, obs Observer, now func() time.Time) *Bucket {
	if now == nil {
		now = time.Now
	}
	return &Bucket{b: b, obs: obs, now: now}
}

// Unwrap returns the decorated bucket.
func (m *Bucket) Unwrap() store.Bucket { return m.b }

func (m *Bucket) done(op string, start time.Time, err error) {
	m.obs.Request(op, m.now().Sub(start), err)
}

// Name implements store.Bucket.
func (m *Bucket) Name() string { return m.b.Name() }

// Check implements store.Bucket.
func (m *Bucket) Check(ctx context.Context) error {
	start := m.now()
	err := m.b.Check(ctx)
	m.done(OpHeadBucket, start, err)
	return err
}

// Head implements store.Bucket.
func (m *Bucket) Head(ctx context.Context, key string) (store.ObjectInfo, error) {
	start := m.now()
	info, err := m.b.Head(ctx, key)
	m.done(OpHeadObject, start, err)
	return info, err
}

// List implements store.Bucket.
func (m *Bucket) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	start := m.now()
	page, err := m.b.List(ctx, in)
	m.done(OpListObjectsV2, start, err)
	return page, err
}

// Get implements store.Bucket.
func (m *Bucket) Get(ctx context.Context, key string, off, length int64, opts store.GetOptions) (io.ReadCloser, store.ObjectInfo, error) {
	start := m.now()
	body, info, err := m.b.Get(ctx, key, off, length, opts)
	m.done(OpGetObject, start, err)
	if err != nil {
		return body, info, err
	}
	return &countingBody{ReadCloser: body, obs: m.obs}, info, nil
}

// Put implements store.Bucket.
func (m *Bucket) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	start := m.now()
	info, err := m.b.Put(ctx, key, body, size, opts)
	m.done(OpPutObject, start, err)
	if err == nil {
		m.obs.Bytes(OpPutObject, size, true)
	}
	return info, err
}

// Delete implements store.Bucket.
func (m *Bucket) Delete(ctx context.Context, key string) error {
	start := m.now()
	err := m.b.Delete(ctx, key)
	m.done(OpDeleteObject, start, err)
	return err
}

// Copy implements store.Bucket.
func (m *Bucket) Copy(ctx context.Context, src, dst string, opts store.CopyOptions) (store.ObjectInfo, error) {
	start := m.now()
	info, err := m.b.Copy(ctx, src, dst, opts)
	m.done(OpCopyObject, start, err)
	return info, err
}

// CreateMultipartUpload implements store.Bucket.
func (m *Bucket) CreateMultipartUpload(ctx context.Context, key string, opts store.PutOptions) (string, error) {
	start := m.now()
	id, err := m.b.CreateMultipartUpload(ctx, key, opts)
	m.done(OpCreateMultipartUpload, start, err)
	return id, err
}

// UploadPart implements store.Bucket.
func (m *Bucket) UploadPart(ctx context.Context, key, uploadID string, n int32, body io.ReadSeeker, size int64) (store.Part, error) {
	start := m.now()
	p, err := m.b.UploadPart(ctx, key, uploadID, n, body, size)
	m.done(OpUploadPart, start, err)
	if err == nil {
		m.obs.Bytes(OpUploadPart, size, true)
	}
	return p, err
}

// UploadPartCopy implements store.Bucket. A copy sends no body: its bytes
// are not reported.
func (m *Bucket) UploadPartCopy(ctx context.Context, key, uploadID string, n int32, srcKey, srcETag string, off, size int64) (store.Part, error) {
	start := m.now()
	p, err := m.b.UploadPartCopy(ctx, key, uploadID, n, srcKey, srcETag, off, size)
	m.done(OpUploadPartCopy, start, err)
	return p, err
}

// CompleteMultipartUpload implements store.Bucket.
func (m *Bucket) CompleteMultipartUpload(ctx context.Context, key, uploadID string, parts []store.Part) (store.ObjectInfo, error) {
	start := m.now()
	info, err := m.b.CompleteMultipartUpload(ctx, key, uploadID, parts)
	m.done(OpCompleteMultipartUpload, start, err)
	return info, err
}

// AbortMultipartUpload implements store.Bucket.
func (m *Bucket) AbortMultipartUpload(ctx context.Context, key, uploadID string) error {
	start := m.now()
	err := m.b.AbortMultipartUpload(ctx, key, uploadID)
	m.done(OpAbortMultipartUpload, start, err)
	return err
}

// countingBody reports a Get's body bytes as they are read.
type countingBody struct {
	io.ReadCloser
	obs Observer
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 {
		c.obs.Bytes(OpGetObject, int64(n), false)
	}
	return n, err
}
