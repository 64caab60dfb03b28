package store

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error a Bucket returns wraps exactly one of these.
var (
	// ErrNotFound: no object with that key (NoSuchKey, 404).
	ErrNotFound = errors.New("not found")
	// ErrNoSuchBucket: the bucket does not exist.
	ErrNoSuchBucket = errors.New("no such bucket")
	// ErrNoSuchUpload: the multipart upload id is unknown (completed,
	// aborted or expired).
	ErrNoSuchUpload = errors.New("no such multipart upload")
	// ErrAccessDenied: the credentials are valid but may not do this.
	ErrAccessDenied = errors.New("access denied")
	// ErrBadCredentials: the server does not accept the credentials at all
	// (unknown access key, bad signature, expired token).
	ErrBadCredentials = errors.New("credentials rejected")
	// ErrPreconditionFailed: an If-Match condition did not hold; the object
	// changed.
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrInvalidRange: a read started at or past the end of the object.
	ErrInvalidRange = errors.New("invalid range")
	// ErrInvalidArgument: the request itself is wrong (part too small, key
	// too long, bad part list).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrTooLarge: the object or part is larger than S3 allows.
	ErrTooLarge = errors.New("too large")
	// ErrUnavailable: the server could not be reached or kept failing
	// (network errors, 5xx and throttling after retries).
	ErrUnavailable = errors.New("service unavailable")
	// ErrCanceled: the caller's context ended first.
	ErrCanceled = errors.New("canceled")
)

// OpError is the error a Bucket returns: which operation on which key went
// wrong, the server's code and request id when there was a response, and
// the sentinel it means.
type OpError struct {
	Op        string // S3 operation, e.g. "GetObject"
	Key       string // object key, "" for bucket operations
	Code      string // server error code, e.g. "NoSuchKey"; "" without a response
	RequestID string
	Kind      error // one of the sentinels above
	Err       error // the underlying error, may be nil
}

func (e *OpError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Key != "" {
		fmt.Fprintf(&b, " %q", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Code != "" || e.RequestID != "" {
		b.WriteString(" (")
		b.WriteString(e.Code)
		if e.RequestID != "" {
			if e.Code != "" {
				b.WriteString(", ")
			}
			b.WriteString("request id ")
			b.WriteString(e.RequestID)
		}
		b.WriteString(")")
	}
	if e.Err != nil && e.Code == "" {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes both the sentinel (for errors.Is) and the cause.
func (e *OpError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Errorf builds an *OpError of the given kind with a formatted cause; for
// implementations that have no server response (the fake, local checks).
func Errorf(kind error, op, key, format string, args ...any) error {
	return &OpError{Op: op, Key: key, Kind: kind, Err: fmt.Errorf(format, args...)}
}

// CheckPartCopy checks an UploadPartCopy's arguments that need no server:
// the part number, and a source range of 1..MaxPartSize bytes. Both the
// S3 client and the fake answer them alike, before any request.
func CheckPartCopy(op, key string, n int32, off, size int64) error {
	if n < 1 || n > MaxParts {
		return &OpError{Op: op, Key: key, Code: "InvalidArgument", Kind: ErrInvalidArgument,
			Err: fmt.Errorf("part number %d not in 1..%d", n, MaxParts)}
	}
	if off < 0 || size < 1 {
		return &OpError{Op: op, Key: key, Code: "InvalidArgument", Kind: ErrInvalidArgument,
			Err: fmt.Errorf("copy source range of %d bytes at %d", size, off)}
	}
	if size > MaxPartSize {
		return &OpError{Op: op, Key: key, Code: "EntityTooLarge", Kind: ErrTooLarge,
			Err: fmt.Errorf("part is %d bytes, more than %d", size, MaxPartSize)}
	}
	return nil
}
