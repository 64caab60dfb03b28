package testserver

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Proxy is a reverse proxy in front of the server that counts requests by
// S3 operation, and the body bytes they send, for tests that assert what
// an operation costs.
type Proxy struct {
	Endpoint string

	mu     sync.Mutex
	counts map[string]int
	bytes  map[string]int64
}

// CountingProxy starts a Proxy to s; it stops when the test ends.
func (s *Server) CountingProxy(t testing.TB) *Proxy {
	t.Helper()
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{counts: map[string]int{}, bytes: map[string]int64{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := Operation(r)
		p.mu.Lock()
		p.counts[op]++
		p.bytes[op] += max(r.ContentLength, 0)
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	p.Endpoint = hs.URL
	return p
}

// Counts returns the requests seen so far by operation.
func (p *Proxy) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// Bytes returns the request body bytes (Content-Length) seen so far by
// operation.
func (p *Proxy) Bytes() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.bytes))
	for k, v := range p.bytes {
		out[k] = v
	}
	return out
}

// Reset sets every count to zero.
func (p *Proxy) Reset() {
	p.mu.Lock()
	clear(p.counts)
	clear(p.bytes)
	p.mu.Unlock()
}

// Operation names the S3 operation of a path-style request.
func Operation(r *http.Request) string {
	q := r.URL.Query()
	// "/bucket" or "/bucket/": a request on the bucket, not an object.
	onBucket := !strings.Contains(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/"), "/")
	switch r.Method {
	case http.MethodHead:
		if onBucket {
			return "HeadBucket"
		}
		return "HeadObject"
	case http.MethodGet:
		switch {
		case q.Get("list-type") == "2":
			return "ListObjectsV2"
		case onBucket && q.Has("uploads"):
			return "ListMultipartUploads"
		case onBucket && q.Has("versions"):
			return "ListObjectVersions"
		case onBucket && q.Has("location"):
			return "GetBucketLocation"
		case onBucket:
			// s3fs and rclone list with version 1 (no list-type).
			return "ListObjects"
		case q.Has("uploadId"):
			return "ListParts"
		case r.Header.Get("Range") != "":
			return "GetObject(range)"
		}
		return "GetObject"
	case http.MethodPut:
		switch {
		case q.Has("partNumber") && r.Header.Get("X-Amz-Copy-Source") != "":
			return "UploadPartCopy"
		case q.Has("partNumber"):
			return "UploadPart"
		case r.Header.Get("X-Amz-Copy-Source") != "":
			return "CopyObject"
		}
		return "PutObject"
	case http.MethodPost:
		if q.Has("uploads") {
			return "CreateMultipartUpload"
		}
		if q.Has("uploadId") {
			return "CompleteMultipartUpload"
		}
		return "POST"
	case http.MethodDelete:
		if q.Has("uploadId") {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	}
	return r.Method
}

// Via returns a view of the same server whose Endpoint is endpoint (a
// Proxy's), with the same account.
func (s *Server) Via(endpoint string) *Server {
	v := s.As(s.access, s.secret)
	if s.access == "" {
		v = s.As(AccessKey, SecretKey)
	}
	v.Endpoint = endpoint
	return v
}
