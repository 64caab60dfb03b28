// Package memstore is a strict in-memory store.Bucket for unit tests.
//
// It is deliberately stricter than most S3-compatible servers, so that code
// tested against it also works against AWS S3:
//
//   - every part but the last must be at least store.MinPartSize, checked at
//     CompleteMultipartUpload like S3 (EntityTooSmall), copied parts
//     (UploadPartCopy) as well;
//   - UploadPartCopy checks, in versitygw's order, the upload, the source,
//     the range (inside the source: ErrInvalidRange) and the source's ETag;
//   - part numbers are 1..store.MaxParts, listed parts must be ascending and
//     their ETags must match what UploadPart returned;
//   - an upload id is gone once completed or aborted (ErrNoSuchUpload).
//     AWS and versitygw may still accept a repeated CompleteMultipartUpload
//     of the same parts for a while, so a caller retrying a Complete whose
//     response was lost must handle both outcomes (e.g. Head the key);
//   - keys are 1..store.MaxKeyLength bytes, Put is limited to
//     store.MaxPutSize;
//   - a copy of an object onto itself must replace its metadata (S3 rejects
//     it otherwise);
//   - list pages are tiny (Options.MaxListKeys, default 3), so callers that
//     ignore continuation tokens fail their tests.
//
// Tests can inject failures (SetFault, Options.Fault), count the requests
// each operation received (Calls) and make the bucket disappear
// (SetMissing). Operation names are the S3 API names used in
// store.OpError.Op, listed as the Op* constants.
//
// # Concurrency
//
// A Bucket is safe for concurrent use. One mutex guards all state; it is
// never held while reading a caller's body or calling Options.Fault, so a
// fault hook may block to widen a race window.
package memstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ampfs/ampfs/store"
)

// Operation names, as in store.OpError.Op, for SetFault, Calls and
// Options.Fault.
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

// defaultContentType is what S3 reports for an object stored without one.
const defaultContentType = "binary/octet-stream"

// Options configure a Bucket. The zero value is a usable bucket.
type Options struct {
	// Name is the bucket name; "" means "memstore".
	Name string
	// Now is the clock for LastModified; nil means time.Now. Times are
	// truncated to seconds, as S3's Last-Modified header is.
	Now func() time.Time
	// MaxListKeys caps objects plus common prefixes per List page; 0 means
	// 3, so continuation is exercised by every test that lists.
	MaxListKeys int
	// Fault, when set, is called at the start of every operation (after
	// the call is counted, before any effect) without the lock held; a
	// non-nil result fails the operation, as SetFault does. key is the
	// object key ("" for HeadBucket, the prefix for ListObjectsV2, the
	// source for CopyObject, the destination for UploadPartCopy).
	Fault func(op, key string) error
	// MaxCopySize is the largest source Copy accepts (ErrTooLarge above
	// it, as S3's CopyObject above 5 GiB); 0 means store.MaxPutSize. Tests
	// of what happens above the limit set it small.
	MaxCopySize int64
}

// Bucket is the in-memory store.Bucket.
type Bucket struct {
	name        string
	now         func() time.Time
	maxListKeys int
	faultHook   func(op, key string) error
	maxCopy     int64

	mu sync.Mutex
	// objects by key; an object's data is never modified after it is
	// stored, so readers may keep slices of it without the lock.
	objects map[string]*object         // GUARDED_BY(mu)
	uploads map[string]*upload         // GUARDED_BY(mu), by upload id
	faults  map[string][]*pendingFault // GUARDED_BY(mu), by op
	calls   map[string]int             // GUARDED_BY(mu), by op
	missing bool                       // GUARDED_BY(mu)
	nextID  uint64                     // GUARDED_BY(mu)
}

type object struct {
	data        []byte
	etag        string
	modified    time.Time
	contentType string
	metadata    map[string]string
}

type upload struct {
	key         string
	contentType string
	metadata    map[string]string
	parts       map[int32]*part
}

type part struct {
	data []byte
	etag string
}

type pendingFault struct {
	err error
	n   int // remaining calls; < 0 means until cleared
}

var _ store.Bucket = (*Bucket)(nil)

// New returns an empty bucket.
func New(opts Options) *Bucket {
	b := &Bucket{
		name:        opts.Name,
		now:         opts.Now,
		maxListKeys: opts.MaxListKeys,
		faultHook:   opts.Fault,
		maxCopy:     opts.MaxCopySize,
		objects:     make(map[string]*object),
		uploads:     make(map[string]*upload),
		faults:      make(map[string][]*pendingFault),
		calls:       make(map[string]int),
	}
	if b.name == "" {
		b.name = "memstore"
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.maxListKeys <= 0 {
		b.maxListKeys = 3
	}
	if b.maxCopy <= 0 {
		b.maxCopy = store.MaxPutSize
	}
	return b
}

// SetFault makes the next n calls of op fail with err (n < 0: every call
// until ClearFaults). Faults for one op queue up in the order they were
// set. An err that is not already a *store.OpError is wrapped in one; its
// kind is the sentinel err wraps, or store.ErrUnavailable if it wraps none,
// so the store's error contract still holds.
func (b *Bucket) SetFault(op string, err error, n int) {
	if n == 0 || err == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults[op] = append(b.faults[op], &pendingFault{err: err, n: n})
}

// ClearFaults removes all faults set with SetFault.
func (b *Bucket) ClearFaults() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.faults)
}

// Calls returns how many times op was called, failed calls included.
func (b *Bucket) Calls(op string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[op]
}

// TotalCalls returns the number of calls of all operations.
func (b *Bucket) TotalCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.calls {
		n += c
	}
	return n
}

// ResetCalls sets all call counters to zero.
func (b *Bucket) ResetCalls() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.calls)
}

// SetMissing makes every operation fail with store.ErrNoSuchBucket while
// missing is true, as if the bucket had been deleted. The contents are kept.
func (b *Bucket) SetMissing(missing bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.missing = missing
}

// Keys returns all object keys in byte order.
func (b *Bucket) Keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.objects))
}

// Object returns a copy of an object's data and its info, for assertions.
func (b *Bucket) Object(key string) ([]byte, store.ObjectInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return nil, store.ObjectInfo{}, false
	}
	return bytes.Clone(o.data), o.info(key, true), true
}

// Uploads returns the ids of the multipart uploads in progress for keys
// with the given prefix, so tests can assert that none was left behind.
func (b *Bucket) Uploads(prefix string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for id, u := range b.uploads {
		if strings.HasPrefix(u.key, prefix) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Name implements store.Bucket.
func (b *Bucket) Name() string { return b.name }

// begin counts the call and returns the error it must fail with, if any:
// a canceled context, an injected fault, or a missing bucket.
func (b *Bucket) begin(ctx context.Context, op, key string) error {
	b.mu.Lock()
	b.calls[op]++
	injected := b.takeFaultLocked(op)
	missing := b.missing
	b.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return &store.OpError{Op: op, Key: key, Kind: store.ErrCanceled, Err: err}
	}
	if injected != nil {
		return wrapFault(op, key, injected)
	}
	if b.faultHook != nil {
		if err := b.faultHook(op, key); err != nil {
			return wrapFault(op, key, err)
		}
	}
	if missing {
		return &store.OpError{Op: op, Key: key, Code: "NoSuchBucket", Kind: store.ErrNoSuchBucket}
	}
	return nil
}

func (b *Bucket) takeFaultLocked(op string) error {
	q := b.faults[op]
	if len(q) == 0 {
		return nil
	}
	f := q[0]
	if f.n > 0 {
		f.n--
		if f.n == 0 {
			b.faults[op] = q[1:]
		}
	}
	return f.err
}

var sentinels = []error{
	store.ErrNotFound, store.ErrNoSuchBucket, store.ErrNoSuchUpload,
	store.ErrAccessDenied, store.ErrBadCredentials, store.ErrPreconditionFailed,
	store.ErrInvalidRange, store.ErrInvalidArgument, store.ErrTooLarge,
	store.ErrUnavailable, store.ErrCanceled,
}

func wrapFault(op, key string, err error) error {
	var oe *store.OpError
	if errors.As(err, &oe) {
		return err
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			if err == s {
				return &store.OpError{Op: op, Key: key, Code: "InjectedFault", Kind: s}
			}
			return &store.OpError{Op: op, Key: key, Code: "InjectedFault", Kind: s, Err: err}
		}
	}
	return &store.OpError{Op: op, Key: key, Code: "InjectedFault", Kind: store.ErrUnavailable, Err: err}
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

// readBody reads exactly size bytes, as S3 does with Content-Length.
func readBody(op, key string, body io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return nil, store.Errorf(store.ErrInvalidArgument, op, key, "negative size %d", size)
	}
	if body == nil {
		body = bytes.NewReader(nil)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(body, data); err != nil {
		return nil, &store.OpError{Op: op, Key: key, Code: "IncompleteBody", Kind: store.ErrInvalidArgument,
			Err: fmt.Errorf("reading %d bytes of body: %w", size, err)}
	}
	return data, nil
}

func (o *object) info(key string, withMeta bool) store.ObjectInfo {
	fi := store.ObjectInfo{
		Key:          key,
		Size:         int64(len(o.data)),
		ETag:         o.etag,
		LastModified: o.modified,
	}
	if withMeta {
		fi.ContentType = o.contentType
		fi.Metadata = maps.Clone(o.metadata)
		if fi.Metadata == nil {
			fi.Metadata = map[string]string{}
		}
	}
	return fi
}

func (b *Bucket) stamp() time.Time {
	return b.now().UTC().Truncate(time.Second)
}

func lowerMeta(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

func contentType(ct string) string {
	if ct == "" {
		return defaultContentType
	}
	return ct
}

func md5hex(data []byte) string {
	sum := md5.Sum(data)
	return hex.EncodeToString(sum[:])
}

// Check implements store.Bucket.
func (b *Bucket) Check(ctx context.Context) error {
	return b.begin(ctx, OpHeadBucket, "")
}

// Head implements store.Bucket.
func (b *Bucket) Head(ctx context.Context, key string) (store.ObjectInfo, error) {
	if err := b.begin(ctx, OpHeadObject, key); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := checkKey(OpHeadObject, key); err != nil {
		return store.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return store.ObjectInfo{}, &store.OpError{Op: OpHeadObject, Key: key, Code: "NotFound", Kind: store.ErrNotFound}
	}
	return o.info(key, true), nil
}

// Get implements store.Bucket.
func (b *Bucket) Get(ctx context.Context, key string, off, length int64, opts store.GetOptions) (io.ReadCloser, store.ObjectInfo, error) {
	if err := b.begin(ctx, OpGetObject, key); err != nil {
		return nil, store.ObjectInfo{}, err
	}
	if err := checkKey(OpGetObject, key); err != nil {
		return nil, store.ObjectInfo{}, err
	}
	if off < 0 {
		return nil, store.ObjectInfo{}, store.Errorf(store.ErrInvalidArgument, OpGetObject, key, "negative offset %d", off)
	}
	b.mu.Lock()
	o, ok := b.objects[key]
	var fi store.ObjectInfo
	if ok {
		fi = o.info(key, true)
	}
	b.mu.Unlock()
	if !ok {
		return nil, store.ObjectInfo{}, &store.OpError{Op: OpGetObject, Key: key, Code: "NoSuchKey", Kind: store.ErrNotFound}
	}
	if opts.IfMatch != "" && strings.Trim(opts.IfMatch, `"`) != o.etag {
		return nil, store.ObjectInfo{}, &store.OpError{Op: OpGetObject, Key: key, Code: "PreconditionFailed", Kind: store.ErrPreconditionFailed,
			Err: fmt.Errorf("ETag is %s, not %s", o.etag, opts.IfMatch)}
	}
	size := int64(len(o.data))
	if size == 0 {
		return io.NopCloser(bytes.NewReader(nil)), fi, nil
	}
	if off >= size {
		return nil, store.ObjectInfo{}, &store.OpError{Op: OpGetObject, Key: key, Code: "InvalidRange", Kind: store.ErrInvalidRange,
			Err: fmt.Errorf("offset %d of a %d-byte object", off, size)}
	}
	end := size
	if length >= 0 && length < size-off {
		end = off + length
	}
	return io.NopCloser(bytes.NewReader(o.data[off:end])), fi, nil
}

// Put implements store.Bucket.
func (b *Bucket) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := b.begin(ctx, OpPutObject, key); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := checkKey(OpPutObject, key); err != nil {
		return store.ObjectInfo{}, err
	}
	if size > store.MaxPutSize {
		return store.ObjectInfo{}, &store.OpError{Op: OpPutObject, Key: key, Code: "EntityTooLarge", Kind: store.ErrTooLarge,
			Err: fmt.Errorf("%d bytes, more than %d", size, store.MaxPutSize)}
	}
	data, err := readBody(OpPutObject, key, body, size)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	o := &object{
		data:        data,
		etag:        md5hex(data),
		modified:    b.stamp(),
		contentType: contentType(opts.ContentType),
		metadata:    lowerMeta(opts.Metadata),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objects[key] = o
	return o.info(key, true), nil
}

// Delete implements store.Bucket.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.begin(ctx, OpDeleteObject, key); err != nil {
		return err
	}
	if err := checkKey(OpDeleteObject, key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.objects, key)
	return nil
}

// Copy implements store.Bucket.
func (b *Bucket) Copy(ctx context.Context, src, dst string, opts store.CopyOptions) (store.ObjectInfo, error) {
	if err := b.begin(ctx, OpCopyObject, src); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := checkKey(OpCopyObject, src); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := checkKey(OpCopyObject, dst); err != nil {
		return store.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[src]
	if !ok {
		return store.ObjectInfo{}, &store.OpError{Op: OpCopyObject, Key: src, Code: "NoSuchKey", Kind: store.ErrNotFound}
	}
	if opts.IfMatch != "" && strings.Trim(opts.IfMatch, `"`) != o.etag {
		return store.ObjectInfo{}, &store.OpError{Op: OpCopyObject, Key: src, Code: "PreconditionFailed", Kind: store.ErrPreconditionFailed,
			Err: fmt.Errorf("ETag is %s, not %s", o.etag, opts.IfMatch)}
	}
	if int64(len(o.data)) > b.maxCopy {
		return store.ObjectInfo{}, &store.OpError{Op: OpCopyObject, Key: src, Code: "InvalidRequest", Kind: store.ErrTooLarge,
			Err: fmt.Errorf("source is %d bytes, more than %d", len(o.data), b.maxCopy)}
	}
	if src == dst && !opts.ReplaceMetadata {
		// S3: "This copy request is illegal because it is trying to copy an
		// object to itself without changing the object's metadata".
		return store.ObjectInfo{}, &store.OpError{Op: OpCopyObject, Key: src, Code: "InvalidRequest", Kind: store.ErrInvalidArgument,
			Err: errors.New("copy onto itself without replacing metadata")}
	}
	n := &object{
		data:        o.data,
		etag:        md5hex(o.data), // a copy is a new single-part object
		modified:    b.stamp(),
		contentType: o.contentType,
		metadata:    o.metadata,
	}
	if opts.ReplaceMetadata {
		n.contentType = contentType(opts.ContentType)
		n.metadata = lowerMeta(opts.Metadata)
	}
	b.objects[dst] = n
	return n.info(dst, true), nil
}

func (b *Bucket) newUploadIDLocked() string {
	b.nextID++
	var r [6]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("mem-%d-%s", b.nextID, hex.EncodeToString(r[:]))
}

// CreateMultipartUpload implements store.Bucket.
func (b *Bucket) CreateMultipartUpload(ctx context.Context, key string, opts store.PutOptions) (string, error) {
	if err := b.begin(ctx, OpCreateMultipartUpload, key); err != nil {
		return "", err
	}
	if err := checkKey(OpCreateMultipartUpload, key); err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.newUploadIDLocked()
	b.uploads[id] = &upload{
		key:         key,
		contentType: contentType(opts.ContentType),
		metadata:    lowerMeta(opts.Metadata),
		parts:       make(map[int32]*part),
	}
	return id, nil
}

// uploadLocked finds an upload; like S3, an id used with another key is
// unknown.
func (b *Bucket) uploadLocked(op, key, id string) (*upload, error) {
	u, ok := b.uploads[id]
	if !ok || u.key != key {
		return nil, &store.OpError{Op: op, Key: key, Code: "NoSuchUpload", Kind: store.ErrNoSuchUpload,
			Err: fmt.Errorf("upload id %q", id)}
	}
	return u, nil
}

// UploadPart implements store.Bucket.
func (b *Bucket) UploadPart(ctx context.Context, key, uploadID string, n int32, body io.ReadSeeker, size int64) (store.Part, error) {
	if err := b.begin(ctx, OpUploadPart, key); err != nil {
		return store.Part{}, err
	}
	if err := checkKey(OpUploadPart, key); err != nil {
		return store.Part{}, err
	}
	b.mu.Lock()
	_, err := b.uploadLocked(OpUploadPart, key, uploadID)
	b.mu.Unlock()
	if err != nil {
		return store.Part{}, err
	}
	if n < 1 || n > store.MaxParts {
		return store.Part{}, &store.OpError{Op: OpUploadPart, Key: key, Code: "InvalidArgument", Kind: store.ErrInvalidArgument,
			Err: fmt.Errorf("part number %d not in 1..%d", n, store.MaxParts)}
	}
	if size > store.MaxPartSize {
		return store.Part{}, &store.OpError{Op: OpUploadPart, Key: key, Code: "EntityTooLarge", Kind: store.ErrTooLarge,
			Err: fmt.Errorf("part is %d bytes, more than %d", size, store.MaxPartSize)}
	}
	data, err := readBody(OpUploadPart, key, body, size)
	if err != nil {
		return store.Part{}, err
	}
	p := &part{data: data, etag: md5hex(data)}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Look again: the upload may have been completed or aborted while the
	// body was read.
	u, err := b.uploadLocked(OpUploadPart, key, uploadID)
	if err != nil {
		return store.Part{}, err
	}
	u.parts[n] = p
	return store.Part{Number: n, ETag: p.etag, Size: size}, nil
}

// UploadPartCopy implements store.Bucket.
func (b *Bucket) UploadPartCopy(ctx context.Context, key, uploadID string, n int32, srcKey, srcETag string, off, size int64) (store.Part, error) {
	const op = OpUploadPartCopy
	if err := b.begin(ctx, op, key); err != nil {
		return store.Part{}, err
	}
	if err := checkKey(op, key); err != nil {
		return store.Part{}, err
	}
	if err := checkKey(op, srcKey); err != nil {
		return store.Part{}, err
	}
	if err := store.CheckPartCopy(op, key, n, off, size); err != nil {
		return store.Part{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	u, err := b.uploadLocked(op, key, uploadID)
	if err != nil {
		return store.Part{}, err
	}
	o, ok := b.objects[srcKey]
	if !ok {
		return store.Part{}, &store.OpError{Op: op, Key: srcKey, Code: "NoSuchKey", Kind: store.ErrNotFound}
	}
	if srcSize := int64(len(o.data)); off >= srcSize || size > srcSize-off {
		return store.Part{}, &store.OpError{Op: op, Key: srcKey, Code: "InvalidRange", Kind: store.ErrInvalidRange,
			Err: fmt.Errorf("range of %d bytes at %d of a %d-byte source", size, off, srcSize)}
	}
	if srcETag != "" && strings.Trim(srcETag, `"`) != o.etag {
		return store.Part{}, &store.OpError{Op: op, Key: srcKey, Code: "PreconditionFailed", Kind: store.ErrPreconditionFailed,
			Err: fmt.Errorf("ETag is %s, not %s", o.etag, srcETag)}
	}
	// The object's data is never modified, so the part may share it.
	data := o.data[off : off+size : off+size]
	p := &part{data: data, etag: md5hex(data)}
	u.parts[n] = p
	return store.Part{Number: n, ETag: p.etag, Size: size}, nil
}

// CompleteMultipartUpload implements store.Bucket.
func (b *Bucket) CompleteMultipartUpload(ctx context.Context, key, uploadID string, parts []store.Part) (store.ObjectInfo, error) {
	const op = OpCompleteMultipartUpload
	if err := b.begin(ctx, op, key); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := checkKey(op, key); err != nil {
		return store.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	u, err := b.uploadLocked(op, key, uploadID)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	if len(parts) == 0 {
		return store.ObjectInfo{}, &store.OpError{Op: op, Key: key, Code: "MalformedXML", Kind: store.ErrInvalidArgument,
			Err: errors.New("no parts")}
	}
	var (
		total int64
		sums  []byte
	)
	for i, p := range parts {
		if i > 0 && p.Number <= parts[i-1].Number {
			return store.ObjectInfo{}, &store.OpError{Op: op, Key: key, Code: "InvalidPartOrder", Kind: store.ErrInvalidArgument,
				Err: fmt.Errorf("part %d listed after part %d", p.Number, parts[i-1].Number)}
		}
		up, ok := u.parts[p.Number]
		if !ok || strings.Trim(p.ETag, `"`) != up.etag {
			return store.ObjectInfo{}, &store.OpError{Op: op, Key: key, Code: "InvalidPart", Kind: store.ErrInvalidArgument,
				Err: fmt.Errorf("part %d with ETag %q was not uploaded", p.Number, p.ETag)}
		}
		if i < len(parts)-1 && int64(len(up.data)) < store.MinPartSize {
			return store.ObjectInfo{}, &store.OpError{Op: op, Key: key, Code: "EntityTooSmall", Kind: store.ErrInvalidArgument,
				Err: fmt.Errorf("part %d is %d bytes, less than %d", p.Number, len(up.data), store.MinPartSize)}
		}
		total += int64(len(up.data))
		sum, _ := hex.DecodeString(up.etag)
		sums = append(sums, sum...)
	}
	if total > store.MaxObjectSize {
		return store.ObjectInfo{}, &store.OpError{Op: op, Key: key, Code: "EntityTooLarge", Kind: store.ErrTooLarge,
			Err: fmt.Errorf("%d bytes, more than %d", total, store.MaxObjectSize)}
	}
	data := make([]byte, 0, total)
	for _, p := range parts {
		data = append(data, u.parts[p.Number].data...)
	}
	o := &object{
		data:        data,
		etag:        fmt.Sprintf("%s-%d", md5hex(sums), len(parts)),
		modified:    b.stamp(),
		contentType: u.contentType,
		metadata:    u.metadata,
	}
	b.objects[key] = o
	delete(b.uploads, uploadID)
	return o.info(key, true), nil
}

// AbortMultipartUpload implements store.Bucket.
func (b *Bucket) AbortMultipartUpload(ctx context.Context, key, uploadID string) error {
	if err := b.begin(ctx, OpAbortMultipartUpload, key); err != nil {
		return err
	}
	if err := checkKey(OpAbortMultipartUpload, key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.uploadLocked(OpAbortMultipartUpload, key, uploadID); err != nil {
		return err
	}
	delete(b.uploads, uploadID)
	return nil
}

// List implements store.Bucket.
func (b *Bucket) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	const op = OpListObjectsV2
	if err := b.begin(ctx, op, in.Prefix); err != nil {
		return store.ListPage{}, err
	}
	if in.MaxKeys < 0 {
		return store.ListPage{}, store.Errorf(store.ErrInvalidArgument, op, in.Prefix, "negative MaxKeys %d", in.MaxKeys)
	}
	after, err := decodeToken(in.ContinuationToken)
	if err != nil {
		return store.ListPage{}, &store.OpError{Op: op, Key: in.Prefix, Code: "InvalidArgument", Kind: store.ErrInvalidArgument, Err: err}
	}
	limit := store.MaxListKeys
	if in.MaxKeys > 0 {
		limit = in.MaxKeys
	}
	limit = min(limit, b.maxListKeys)

	b.mu.Lock()
	defer b.mu.Unlock()
	keys := slices.Sorted(maps.Keys(b.objects))
	var (
		page  store.ListPage
		last  string // last entry (key or common prefix) in the page
		count int
	)
	// Entries (a key, or the common prefix it rolls up into) come in
	// non-decreasing order as keys are sorted, so the last entry of a page
	// is a complete continuation point.
	for _, k := range keys {
		if !strings.HasPrefix(k, in.Prefix) {
			continue
		}
		entry, isPrefix := k, false
		if in.Delimiter != "" {
			if i := strings.Index(k[len(in.Prefix):], in.Delimiter); i >= 0 {
				entry, isPrefix = k[:len(in.Prefix)+i+len(in.Delimiter)], true
			}
		}
		if after != nil && entry <= *after {
			continue
		}
		if count > 0 && entry == last {
			continue // another key under a common prefix already listed
		}
		if count == limit {
			page.IsTruncated = true
			page.NextContinuationToken = encodeToken(last)
			break
		}
		if isPrefix {
			page.CommonPrefixes = append(page.CommonPrefixes, entry)
		} else {
			page.Objects = append(page.Objects, b.objects[k].info(k, false))
		}
		last = entry
		count++
	}
	return page, nil
}

// Continuation tokens are opaque to callers; a version tag makes a token
// from elsewhere fail loudly instead of silently restarting the listing.
const tokenTag = "memstore1:"

func encodeToken(after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(tokenTag + after))
}

func decodeToken(tok string) (*string, error) {
	if tok == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(raw), tokenTag) {
		return nil, fmt.Errorf("invalid continuation token %q", tok)
	}
	after := strings.TrimPrefix(string(raw), tokenTag)
	return &after, nil
}
