package s3store_test

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ampfs/ampfs/internal/testserver"
	"github.com/ampfs/ampfs/store"
	s3store "github.com/ampfs/ampfs/store/s3"
)

// TestOnAttempt: every HTTP attempt is reported with its operation, and a
// retry as attempt 2.
func TestOnAttempt(t *testing.T) {
	srv := testserver.Start(t)
	name := srv.CreateBucket(t, "attempts")
	var mu sync.Mutex
	var seen []string
	record := func(op string, attempt int) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, op+"#"+string(rune('0'+attempt)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := s3store.New(ctx, s3store.Options{
		Bucket:      name,
		Endpoint:    srv.Endpoint,
		Region:      testserver.Region,
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider(testserver.AccessKey, testserver.SecretKey, ""),
		HTTPClient:  &flaky{method: http.MethodPut, failures: 1},
		MaxAttempts: 2,
		OnAttempt:   record,
	})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello")
	if _, err := b.Put(ctx, "k", bytes.NewReader(data), int64(len(data)), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Head(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"PutObject#1", "PutObject#2", "HeadObject#1"}
	if len(seen) != len(want) {
		t.Fatalf("attempts %q, want %q", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("attempts %q, want %q", seen, want)
		}
	}
}
