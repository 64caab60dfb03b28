package s3store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ampfs/ampfs/store"
)

// respErr builds the error chain the SDK returns for an error response.
func respErr(op string, status int, api error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: op, Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      api,
		},
		RequestID: "REQ123",
	}}
}

func api(code string) error { return &smithy.GenericAPIError{Code: code, Message: "message"} }

// netErr builds the error chain of a request that got no response.
func netErr(op string, err error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: op, Err: &smithyhttp.RequestSendError{
		Err: &url.Error{Op: "Get", URL: "http://127.0.0.1:1/b/k", Err: err},
	}}
}

func TestTranslate(t *testing.T) {
	live := context.Background()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name     string
		ctx      context.Context
		op       string
		err      error
		want     error
		wantCode string
	}{
		{"NoSuchKey typed", live, opGetObject, respErr(opGetObject, 404, &types.NoSuchKey{}), store.ErrNotFound, "NoSuchKey"},
		{"NoSuchKey generic", live, opGetObject, respErr(opGetObject, 404, api("NoSuchKey")), store.ErrNotFound, "NoSuchKey"},
		{"HEAD object 404", live, opHeadObject, respErr(opHeadObject, 404, &types.NotFound{}), store.ErrNotFound, "NotFound"},
		{"404 without code", live, opGetObject, respErr(opGetObject, 404, nil), store.ErrNotFound, ""},
		{"HEAD bucket 404", live, opHeadBucket, respErr(opHeadBucket, 404, &types.NotFound{}), store.ErrNoSuchBucket, "NotFound"},
		{"NoSuchBucket", live, opListObjectsV2, respErr(opListObjectsV2, 404, &types.NoSuchBucket{}), store.ErrNoSuchBucket, "NoSuchBucket"},
		{"NoSuchBucket on HeadBucket", live, opHeadBucket, respErr(opHeadBucket, 404, api("NoSuchBucket")), store.ErrNoSuchBucket, "NoSuchBucket"},
		{"NoSuchUpload", live, opUploadPart, respErr(opUploadPart, 404, &types.NoSuchUpload{}), store.ErrNoSuchUpload, "NoSuchUpload"},
		{"AccessDenied", live, opPutObject, respErr(opPutObject, 403, api("AccessDenied")), store.ErrAccessDenied, "AccessDenied"},
		{"HEAD 403", live, opHeadObject, respErr(opHeadObject, 403, api("Forbidden")), store.ErrAccessDenied, "Forbidden"},
		{"403 without code", live, opHeadBucket, respErr(opHeadBucket, 403, nil), store.ErrAccessDenied, ""},
		{"InvalidAccessKeyId", live, opListObjectsV2, respErr(opListObjectsV2, 403, api("InvalidAccessKeyId")), store.ErrBadCredentials, "InvalidAccessKeyId"},
		{"SignatureDoesNotMatch", live, opGetObject, respErr(opGetObject, 403, api("SignatureDoesNotMatch")), store.ErrBadCredentials, "SignatureDoesNotMatch"},
		{"versitygw unknown access key", live, opListObjectsV2, respErr(opListObjectsV2, 404, api("XAdminUserNotFound")), store.ErrBadCredentials, "XAdminUserNotFound"},
		{"ExpiredToken", live, opGetObject, respErr(opGetObject, 400, api("ExpiredToken")), store.ErrBadCredentials, "ExpiredToken"},
		{"InvalidToken", live, opGetObject, respErr(opGetObject, 400, api("InvalidToken")), store.ErrBadCredentials, "InvalidToken"},
		{"no credentials in the chain", live, opHeadBucket, fmt.Errorf("get identity: %w", &credentialsError{errors.New("no EC2 IMDS role found")}), store.ErrBadCredentials, ""},
		{"PreconditionFailed", live, opGetObject, respErr(opGetObject, 412, api("PreconditionFailed")), store.ErrPreconditionFailed, "PreconditionFailed"},
		{"412 without code", live, opHeadObject, respErr(opHeadObject, 412, nil), store.ErrPreconditionFailed, ""},
		{"InvalidRange", live, opGetObject, respErr(opGetObject, 416, api("InvalidRange")), store.ErrInvalidRange, "InvalidRange"},
		{"416 without code", live, opGetObject, respErr(opGetObject, 416, nil), store.ErrInvalidRange, ""},
		{"EntityTooSmall", live, opCompleteMultipartUpload, respErr(opCompleteMultipartUpload, 400, api("EntityTooSmall")), store.ErrInvalidArgument, "EntityTooSmall"},
		{"InvalidPart", live, opCompleteMultipartUpload, respErr(opCompleteMultipartUpload, 400, api("InvalidPart")), store.ErrInvalidArgument, "InvalidPart"},
		{"InvalidPartOrder", live, opCompleteMultipartUpload, respErr(opCompleteMultipartUpload, 400, api("InvalidPartOrder")), store.ErrInvalidArgument, "InvalidPartOrder"},
		{"InvalidArgument", live, opUploadPart, respErr(opUploadPart, 400, api("InvalidArgument")), store.ErrInvalidArgument, "InvalidArgument"},
		{"copy source range past the end", live, opUploadPartCopy, respErr(opUploadPartCopy, 400, &smithy.GenericAPIError{Code: "InvalidArgument", Message: "Range specified is not valid for source object of size: 1000"}), store.ErrInvalidRange, "InvalidArgument"},
		{"other UploadPartCopy InvalidArgument", live, opUploadPartCopy, respErr(opUploadPartCopy, 400, api("InvalidArgument")), store.ErrInvalidArgument, "InvalidArgument"},
		{"range message of another op", live, opUploadPart, respErr(opUploadPart, 400, &smithy.GenericAPIError{Code: "InvalidArgument", Message: "Range specified is not valid for source object of size: 1000"}), store.ErrInvalidArgument, "InvalidArgument"},
		{"KeyTooLongError", live, opPutObject, respErr(opPutObject, 400, api("KeyTooLongError")), store.ErrInvalidArgument, "KeyTooLongError"},
		{"EntityTooLarge", live, opPutObject, respErr(opPutObject, 400, api("EntityTooLarge")), store.ErrTooLarge, "EntityTooLarge"},
		{"SlowDown after retries", live, opGetObject, &retry.MaxAttemptsError{Attempt: 3, Err: respErr(opGetObject, 503, api("SlowDown"))}, store.ErrUnavailable, "SlowDown"},
		{"InternalError", live, opGetObject, respErr(opGetObject, 500, api("InternalError")), store.ErrUnavailable, "InternalError"},
		{"unknown 5xx", live, opGetObject, respErr(opGetObject, 502, api("BadGateway")), store.ErrUnavailable, "BadGateway"},
		{"unknown 4xx", live, opGetObject, respErr(opGetObject, 400, api("SomethingNew")), store.ErrInvalidArgument, "SomethingNew"},
		{"unknown 409", live, opPutObject, respErr(opPutObject, 409, api("Conflict")), store.ErrInvalidArgument, "Conflict"},
		{"redirect", live, opHeadBucket, respErr(opHeadBucket, 301, api("MovedPermanently")), store.ErrInvalidArgument, "MovedPermanently"},
		{"connection refused", live, opGetObject, netErr(opGetObject, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), store.ErrUnavailable, ""},
		{"connection reset", live, opGetObject, netErr(opGetObject, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), store.ErrUnavailable, ""},
		{"DNS", live, opGetObject, netErr(opGetObject, &net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true}), store.ErrUnavailable, ""},
		{"timeout", live, opGetObject, netErr(opGetObject, &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}), store.ErrUnavailable, ""},
		{"transport deadline, caller alive", live, opGetObject, netErr(opGetObject, context.DeadlineExceeded), store.ErrUnavailable, ""},
		{"network after retries", live, opGetObject, &retry.MaxAttemptsError{Attempt: 2, Err: netErr(opGetObject, syscall.ECONNREFUSED)}, store.ErrUnavailable, ""},
		{"caller canceled", canceled, opGetObject, netErr(opGetObject, context.Canceled), store.ErrCanceled, ""},
		{"caller canceled, other cause", canceled, opGetObject, netErr(opGetObject, syscall.ECONNRESET), store.ErrCanceled, ""},
		{"canceled under the SDK", live, opGetObject, &smithy.OperationError{Err: context.Canceled}, store.ErrCanceled, ""},
		{"caller canceled while the body was read", canceled, opListObjectsV2, respErr(opListObjectsV2, 200, &smithy.DeserializationError{Err: fmt.Errorf("read: %w", context.Canceled)}), store.ErrCanceled, ""},
		{"body read broke off, caller alive", live, opListObjectsV2, respErr(opListObjectsV2, 200, &smithy.DeserializationError{Err: fmt.Errorf("read: %w", syscall.ECONNRESET)}), store.ErrUnavailable, ""},
		{"response wins over cancel", canceled, opGetObject, respErr(opGetObject, 404, &types.NoSuchKey{}), store.ErrNotFound, "NoSuchKey"},
		{"invalid params", live, opGetObject, &smithy.OperationError{Err: smithy.InvalidParamsError{Context: "GetObjectInput"}}, store.ErrInvalidArgument, ""},
		{"unknown error", live, opGetObject, errors.New("something odd"), store.ErrUnavailable, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := translate(tc.ctx, tc.op, "the/key", tc.err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("translate = %v, want %v", err, tc.want)
			}
			var oe *store.OpError
			if !errors.As(err, &oe) {
				t.Fatalf("translate = %T, want *store.OpError", err)
			}
			if oe.Op != tc.op || oe.Key != "the/key" || oe.Code != tc.wantCode {
				t.Errorf("OpError op %q key %q code %q, want %q the/key %q", oe.Op, oe.Key, oe.Code, tc.op, tc.wantCode)
			}
			if _, isResp := errors.AsType[*awshttp.ResponseError](tc.err); isResp && oe.RequestID != "REQ123" {
				t.Errorf("RequestID %q, want REQ123", oe.RequestID)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("the SDK error is not kept as the cause")
			}
			// Exactly one sentinel.
			n := 0
			for _, s := range []error{store.ErrNotFound, store.ErrNoSuchBucket, store.ErrNoSuchUpload,
				store.ErrAccessDenied, store.ErrBadCredentials, store.ErrPreconditionFailed,
				store.ErrInvalidRange, store.ErrInvalidArgument, store.ErrTooLarge,
				store.ErrUnavailable, store.ErrCanceled} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%v wraps %d sentinels", err, n)
			}
		})
	}

	if err := translate(live, opGetObject, "k", nil); err != nil {
		t.Errorf("translate(nil) = %v", err)
	}
	oe := &store.OpError{Op: "x", Kind: store.ErrTooLarge}
	if err := translate(live, opGetObject, "k", oe); err != oe {
		t.Errorf("translate(*OpError) = %v, want it unchanged", err)
	}
}

func TestContentRangeTotal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"bytes 0-9/100", 100, true},
		{"bytes 5-5/6", 6, true},
		{"bytes */100", 100, true},
		{"bytes 0-9/*", 0, false},
		{"", 0, false},
	} {
		got, ok := contentRangeTotal(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("contentRangeTotal(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEscapePath(t *testing.T) {
	for in, want := range map[string]string{
		"bucket/dir/file.txt": "bucket/dir/file.txt",
		"b/a b+c":             "b/a%20b%2Bc",
		"b/ü?#%":              "b/%C3%BC%3F%23%25",
	} {
		if got := escapePath(in); got != want {
			t.Errorf("escapePath(%q) = %q, want %q", in, got, want)
		}
	}
}
