package testserver

import (
	"net/http/httptest"
	"testing"
)

func TestOperation(t *testing.T) {
	for _, c := range []struct{ method, target, want string }{
		{"HEAD", "/b", "HeadBucket"},
		{"HEAD", "/b/", "HeadBucket"},
		{"HEAD", "/b/k", "HeadObject"},
		{"HEAD", "/b/dir/", "HeadObject"},
		{"GET", "/b?list-type=2&prefix=p", "ListObjectsV2"},
		{"GET", "/b/?prefix=p&delimiter=%2F", "ListObjects"},
		{"GET", "/b?location", "GetBucketLocation"},
		{"GET", "/b?uploads", "ListMultipartUploads"},
		{"GET", "/b/k", "GetObject"},
		{"GET", "/b/k?uploadId=1", "ListParts"},
	} {
		if got := Operation(httptest.NewRequest(c.method, c.target, nil)); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.target, got, c.want)
		}
	}
}
