package s3store

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/ampfs/ampfs/store"
)

// Operation names used in store.OpError.Op; the S3 API names.
const (
	opHeadBucket              = store.OpHeadBucket
	opHeadObject              = store.OpHeadObject
	opListObjectsV2           = store.OpListObjectsV2
	opGetObject               = store.OpGetObject
	opPutObject               = store.OpPutObject
	opDeleteObject            = store.OpDeleteObject
	opCopyObject              = store.OpCopyObject
	opCreateMultipartUpload   = store.OpCreateMultipartUpload
	opUploadPart              = store.OpUploadPart
	opUploadPartCopy          = store.OpUploadPartCopy
	opCompleteMultipartUpload = store.OpCompleteMultipartUpload
	opAbortMultipartUpload    = store.OpAbortMultipartUpload
)

// codeKinds maps S3 error codes
// (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html) to
// store sentinels. The code decides before the HTTP status: several codes
// share a status with a different meaning (InvalidAccessKeyId and
// AccessDenied are both 403).
var codeKinds = map[string]error{
	"NoSuchKey": store.ErrNotFound,
	// HEAD responses have no body; the SDK names a 404 "NotFound".
	"NotFound": store.ErrNotFound,

	"NoSuchBucket": store.ErrNoSuchBucket,
	"NoSuchUpload": store.ErrNoSuchUpload,

	"AccessDenied":       store.ErrAccessDenied,
	"AllAccessDisabled":  store.ErrAccessDenied,
	"AccountProblem":     store.ErrAccessDenied,
	"Forbidden":          store.ErrAccessDenied, // a 403 HEAD
	"InvalidObjectState": store.ErrAccessDenied, // archived (Glacier) object

	"InvalidAccessKeyId":    store.ErrBadCredentials,
	"SignatureDoesNotMatch": store.ErrBadCredentials,
	"ExpiredToken":          store.ErrBadCredentials,
	"InvalidToken":          store.ErrBadCredentials,
	"TokenRefreshRequired":  store.ErrBadCredentials,
	"InvalidSecurity":       store.ErrBadCredentials,
	"MissingSecurityHeader": store.ErrBadCredentials,
	// versitygw's answer (404) to an unknown access key id, where AWS says
	// InvalidAccessKeyId.
	"XAdminUserNotFound": store.ErrBadCredentials,
	// The signature is refused because of the clock, not the request; the
	// SDK already retried with its skew correction.
	"RequestTimeTooSkewed": store.ErrBadCredentials,

	"PreconditionFailed": store.ErrPreconditionFailed,

	"InvalidRange": store.ErrInvalidRange,

	"EntityTooSmall":               store.ErrInvalidArgument,
	"InvalidPart":                  store.ErrInvalidArgument,
	"InvalidPartOrder":             store.ErrInvalidArgument,
	"InvalidArgument":              store.ErrInvalidArgument,
	"KeyTooLongError":              store.ErrInvalidArgument,
	"InvalidRequest":               store.ErrInvalidArgument,
	"MalformedXML":                 store.ErrInvalidArgument,
	"InvalidDigest":                store.ErrInvalidArgument,
	"BadDigest":                    store.ErrInvalidArgument,
	"IncompleteBody":               store.ErrInvalidArgument,
	"InvalidBucketName":            store.ErrInvalidArgument,
	"MetadataTooLarge":             store.ErrInvalidArgument,
	"AuthorizationHeaderMalformed": store.ErrInvalidArgument, // wrong region
	"PermanentRedirect":            store.ErrInvalidArgument, // wrong region or endpoint

	"EntityTooLarge": store.ErrTooLarge,

	"SlowDown":           store.ErrUnavailable,
	"ServiceUnavailable": store.ErrUnavailable,
	"InternalError":      store.ErrUnavailable,
	"RequestTimeout":     store.ErrUnavailable, // 400, but the server gave up waiting
	"OperationAborted":   store.ErrUnavailable, // 409, a conflicting operation is in flight
}

// statusKinds maps the HTTP status of a response whose code is unknown or
// absent (HEAD).
var statusKinds = map[int]error{
	http.StatusNotFound:                     store.ErrNotFound,
	http.StatusForbidden:                    store.ErrAccessDenied,
	http.StatusUnauthorized:                 store.ErrBadCredentials,
	http.StatusPreconditionFailed:           store.ErrPreconditionFailed,
	http.StatusRequestedRangeNotSatisfiable: store.ErrInvalidRange,
	http.StatusRequestEntityTooLarge:        store.ErrTooLarge,
}

// translate is the one place where an SDK error becomes a store error.
// ctx is the caller's context: an error while it is done means the caller
// gave up, whatever the transport made of it.
func translate(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	var oe *store.OpError
	if errors.As(err, &oe) {
		return err
	}
	e := &store.OpError{Op: op, Key: key, Err: err}

	var (
		status int
		resp   interface{ HTTPStatusCode() int }
		reqID  interface{ ServiceRequestID() string }
		apiErr smithy.APIError
	)
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	if errors.As(err, &reqID) {
		e.RequestID = reqID.ServiceRequestID()
	}
	if errors.As(err, &apiErr) {
		e.Code = apiErr.ErrorCode()
	}

	var credErr *credentialsError
	switch {
	case errors.As(err, &credErr):
		e.Kind = store.ErrBadCredentials
	case status == 0 && (ctx.Err() != nil || errors.Is(err, context.Canceled)):
		// No response and the caller gave up (or its context was canceled
		// under the SDK, which only it can do).
		e.Kind = store.ErrCanceled
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// A response whose body was being read when the caller gave up
		// (the SDK says "deserialization failed"): canceled, not a bad
		// request.
		e.Kind = store.ErrCanceled
	case isDeserialization(err):
		// The response broke off or came garbled (a reset while the body
		// was read): the server or the link, not the request.
		e.Kind = store.ErrUnavailable
	case status == 0 && isInvalidParams(err):
		e.Kind = store.ErrInvalidArgument
	case status == 0:
		// No response: refused, reset, DNS, TLS, timeouts, retry quota.
		e.Kind = store.ErrUnavailable
	default:
		e.Kind = kindOf(op, e.Code, status)
		if op == opUploadPartCopy && e.Kind == store.ErrInvalidArgument && apiErr != nil &&
			strings.HasPrefix(apiErr.ErrorMessage(), copyRangeMessage) {
			// A copy source range past the source's end: AWS and
			// versitygw call it InvalidArgument, GetObject's InvalidRange.
			e.Kind = store.ErrInvalidRange
		}
	}
	return e
}

func isDeserialization(err error) bool {
	var de *smithy.DeserializationError
	return errors.As(err, &de)
}

// copyRangeMessage starts the message of the InvalidArgument error for an
// x-amz-copy-source-range that does not lie inside the source.
const copyRangeMessage = "Range specified is not valid for source object"

func kindOf(op, code string, status int) error {
	if op == opHeadBucket && status == http.StatusNotFound && (code == "" || code == "NotFound") {
		// A HEAD on the bucket has no body; its 404 is the bucket's.
		return store.ErrNoSuchBucket
	}
	if k, ok := codeKinds[code]; ok {
		return k
	}
	if k, ok := statusKinds[status]; ok {
		return k
	}
	if status >= 500 {
		return store.ErrUnavailable
	}
	// Other 4xx (and 3xx redirects, e.g. a wrong region): the request is
	// wrong and repeating it will not help.
	return store.ErrInvalidArgument
}

func isInvalidParams(err error) bool {
	var ip smithy.InvalidParamsError
	return errors.As(err, &ip)
}
