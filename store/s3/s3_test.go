package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ampfs/ampfs/internal/testserver"
	"github.com/ampfs/ampfs/store"
	s3store "github.com/ampfs/ampfs/store/s3"
	"github.com/ampfs/ampfs/store/storetest"
)

func TestMain(m *testing.M) {
	// Use the binary the Makefile (or a previous run) built rather than
	// building versitygw again.
	if os.Getenv("AMPFS_VERSITYGW") == "" {
		_, file, _, _ := runtime.Caller(0)
		bin := filepath.Join(filepath.Dir(file), "..", "..", "bin", "versitygw")
		if _, err := os.Stat(bin); err == nil {
			os.Setenv("AMPFS_VERSITYGW", bin)
		}
	}
	os.Exit(m.Run())
}

// newBucket connects to bucket at endpoint with the test server's access
// key and the given secret; an empty secret means an unknown access key.
func newBucket(t testing.TB, endpoint, bucket, secret string, maxAttempts int) *s3store.Bucket {
	t.Helper()
	accessKey := testserver.AccessKey
	if secret == "" {
		accessKey, secret = "AKIDUNKNOWN", "whatever-secret"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := s3store.New(ctx, s3store.Options{
		Bucket:      bucket,
		Endpoint:    endpoint,
		Region:      testserver.Region,
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, secret, ""),
		MaxAttempts: maxAttempts,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestConformance(t *testing.T) {
	srv := testserver.Start(t)
	name := srv.CreateBucket(t, "conformance")
	b := newBucket(t, srv.Endpoint, name, testserver.SecretKey, 0)
	storetest.Run(t, func(t *testing.T) store.Bucket { return b })
}

func TestCheck(t *testing.T) {
	srv := testserver.Start(t)
	name := srv.CreateBucket(t, "exists")

	// A closed port: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	tests := []struct {
		name     string
		endpoint string
		bucket   string
		secret   string
		want     error
	}{
		{"ok", srv.Endpoint, name, testserver.SecretKey, nil},
		{"wrong secret", srv.Endpoint, name, "not-the-secret", store.ErrBadCredentials},
		{"unknown access key", srv.Endpoint, name, "", store.ErrBadCredentials},
		{"missing bucket", srv.Endpoint, "no-such-bucket", testserver.SecretKey, store.ErrNoSuchBucket},
		{"nothing listening", closed, name, testserver.SecretKey, store.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBucket(t, tc.endpoint, tc.bucket, tc.secret, 2)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			err := b.Check(ctx)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check: %v, want %v", err, tc.want)
			}
			var oe *store.OpError
			if !errors.As(err, &oe) {
				t.Errorf("Check: %T is not a *store.OpError", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Check took %v", d)
			}
			t.Logf("Check: %v", err)
		})
	}
}

func TestWrongCredentialsOnObjects(t *testing.T) {
	srv := testserver.Start(t)
	name := srv.CreateBucket(t, "creds")
	b := newBucket(t, srv.Endpoint, name, "not-the-secret", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// GET has an error body: the code says what is wrong.
	_, _, err := b.Get(ctx, "some/key", 0, -1, store.GetOptions{})
	if !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("Get with a wrong secret: %v, want ErrBadCredentials", err)
	}
	// HEAD has none: a 403 is all there is.
	_, err = b.Head(ctx, "some/key")
	if !errors.Is(err, store.ErrAccessDenied) && !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("Head with a wrong secret: %v, want ErrAccessDenied or ErrBadCredentials", err)
	}
}

func TestServerGone(t *testing.T) {
	srv := testserver.Start(t)
	name := srv.CreateBucket(t, "gone")
	b := newBucket(t, srv.Endpoint, name, testserver.SecretKey, 2)
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := b.Head(ctx, "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Head with the server stopped: %v, want ErrUnavailable", err)
	}
}

func TestNewRequiresBucket(t *testing.T) {
	_, err := s3store.New(context.Background(), s3store.Options{Region: "us-east-1"})
	if !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("New without a bucket: %v, want ErrInvalidArgument", err)
	}
}

// flaky answers the first failures requests of method with a 503 SlowDown
// after reading their body, as a throttling S3 does, and passes the rest to
// the real server.
type flaky struct {
	mu       sync.Mutex
	method   string
	failures int
	seen     int
}

func (f *flaky) Do(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	fail := req.Method == f.method && f.failures != 0
	if fail {
		f.seen++
		if f.failures > 0 {
			f.failures--
		}
	}
	f.mu.Unlock()
	if !fail {
		return http.DefaultClient.Do(req)
	}
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>FLAKY1</RequestId></Error>`
	return &http.Response{
		StatusCode:    http.StatusServiceUnavailable,
		Status:        "503 Service Unavailable",
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/xml"}, "X-Amz-Request-Id": {"FLAKY1"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

func TestRetries(t *testing.T) {
	srv := testserver.Start(t)
	name := srv.CreateBucket(t, "retries")
	f := &flaky{method: http.MethodPut, failures: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := s3store.New(ctx, s3store.Options{
		Bucket:      name,
		Endpoint:    srv.Endpoint,
		Region:      testserver.Region,
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider(testserver.AccessKey, testserver.SecretKey, ""),
		HTTPClient:  f,
		MaxAttempts: 2,
	})
	if err != nil {
		t.Fatal(err)
	}

	// The first attempt consumed the body; the retry must send it again.
	data := bytes.Repeat([]byte("retry me "), 10000)
	if _, err := b.Put(ctx, "k", bytes.NewReader(data), int64(len(data)), store.PutOptions{}); err != nil {
		t.Fatalf("Put with one throttled attempt: %v", err)
	}
	if f.seen != 1 {
		t.Fatalf("%d throttled attempts, want 1", f.seen)
	}
	rc, _, err := b.Get(ctx, "k", 0, -1, store.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after a retried Put: %d bytes, %v; want %d bytes", len(got), err, len(data))
	}

	// Throttled on every attempt: ErrUnavailable with the server's code.
	f.mu.Lock()
	f.failures, f.seen = -1, 0
	f.mu.Unlock()
	_, err = b.Put(ctx, "k", bytes.NewReader(data), int64(len(data)), store.PutOptions{})
	var oe *store.OpError
	if !errors.Is(err, store.ErrUnavailable) || !errors.As(err, &oe) || oe.Code != "SlowDown" || oe.RequestID != "FLAKY1" {
		t.Fatalf("Put throttled on every attempt: %v, want ErrUnavailable (SlowDown, FLAKY1)", err)
	}
	if f.seen != 2 {
		t.Errorf("%d attempts, want MaxAttempts = 2", f.seen)
	}
}
