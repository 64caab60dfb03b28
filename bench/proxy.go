package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
)

// The counting proxy sits between every client (each file system and the
// limit row) and versitygw, and counts requests by S3 operation. It runs as
// a child process of the bench ("bench proxy"), so its CPU is not charged to
// the limit row, and is controlled through one path no S3 client uses
// (bucket names cannot start with '_').
const statsPath = "/__bench/stats"

// reqStats is a snapshot of the proxy's counters.
type reqStats struct {
	Count    map[string]int64 `json:"count"`
	BytesIn  int64            `json:"bytes_in"`  // request bodies, client -> server
	BytesOut int64            `json:"bytes_out"` // response bodies, server -> client
	Errors   int64            `json:"errors"`    // proxy errors (mostly clients hanging up early)
}

func (s reqStats) total() int64 {
	var n int64
	for _, v := range s.Count {
		n += v
	}
	return n
}

// String lists the kinds, most frequent first: "GetObject(range) 120, HeadObject 3".
func (s reqStats) String() string {
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range s.Count {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].k < all[j].k
	})
	parts := make([]string, len(all))
	for i, e := range all {
		parts[i] = fmt.Sprintf("%s %d", e.k, e.v)
	}
	return strings.Join(parts, ", ")
}

// classify names the S3 operation of a path-style request.
func classify(r *http.Request) string {
	q := r.URL.Query()
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	has := func(k string) bool { _, ok := q[k]; return ok }
	copySrc := r.Header.Get("X-Amz-Copy-Source") != ""
	if bucket == "" {
		if r.Method == http.MethodGet {
			return "ListBuckets"
		}
		return "Service" + r.Method
	}
	if key == "" {
		switch r.Method {
		case http.MethodGet:
			switch {
			case q.Get("list-type") == "2":
				return "ListObjectsV2"
			case has("uploads"):
				return "ListMultipartUploads"
			case has("location"):
				return "GetBucketLocation"
			case has("versions"):
				return "ListObjectVersions"
			case len(q) == 0 || has("prefix") || has("delimiter") || has("marker") || has("max-keys"):
				return "ListObjects(v1)"
			}
			return "GetBucket?" + firstKey(q)
		case http.MethodHead:
			return "HeadBucket"
		case http.MethodPut:
			if len(q) == 0 {
				return "CreateBucket"
			}
			return "PutBucket?" + firstKey(q)
		case http.MethodPost:
			if has("delete") {
				return "DeleteObjects"
			}
			return "PostBucket?" + firstKey(q)
		case http.MethodDelete:
			if len(q) == 0 {
				return "DeleteBucket"
			}
			return "DeleteBucket?" + firstKey(q)
		}
		return "Bucket" + r.Method
	}
	switch r.Method {
	case http.MethodGet:
		switch {
		case has("uploadId"):
			return "ListParts"
		case has("tagging"), has("acl"), has("attributes"), has("retention"), has("legal-hold"):
			return "GetObject?" + firstKey(q)
		case r.Header.Get("Range") != "":
			return "GetObject(range)"
		}
		return "GetObject"
	case http.MethodHead:
		return "HeadObject"
	case http.MethodPut:
		switch {
		case has("partNumber") && copySrc:
			return "UploadPartCopy"
		case has("partNumber"):
			return "UploadPart"
		case copySrc:
			return "CopyObject"
		case has("tagging"), has("acl"), has("retention"), has("legal-hold"):
			return "PutObject?" + firstKey(q)
		}
		return "PutObject"
	case http.MethodPost:
		switch {
		case has("uploads"):
			return "CreateMultipartUpload"
		case has("uploadId"):
			return "CompleteMultipartUpload"
		}
		return "PostObject?" + firstKey(q)
	case http.MethodDelete:
		if has("uploadId") {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	}
	return "Object" + r.Method
}

func firstKey(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

type countingProxy struct {
	rp *httputil.ReverseProxy

	mu sync.Mutex
	// GUARDED_BY(mu)
	stats reqStats
}

type countingBody struct {
	io.ReadCloser
	p   *countingProxy
	out bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.p.mu.Lock()
	if b.out {
		b.p.stats.BytesOut += int64(n)
	} else {
		b.p.stats.BytesIn += int64(n)
	}
	b.p.mu.Unlock()
	return n, err
}

type bufPool struct{ p sync.Pool }

func (b *bufPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufPool) Put(x []byte) { b.p.Put(&x) }

func newCountingProxy(target *url.URL) *countingProxy {
	cp := &countingProxy{stats: reqStats{Count: map[string]int64{}}}
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{}).DialContext,
	}
	pool := &bufPool{p: sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}}
	cp.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// SigV4 signs the Host header: keep the one the client signed.
			pr.Out.Host = pr.In.Host
		},
		Transport:     tr,
		FlushInterval: -1, // stream bodies as they come, so time to first byte is honest
		BufferPool:    pool,
		ErrorLog:      log.New(io.Discard, "", 0),
		ModifyResponse: func(resp *http.Response) error {
			resp.Body = &countingBody{ReadCloser: resp.Body, p: cp, out: true}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cp.mu.Lock()
			cp.stats.Errors++
			cp.mu.Unlock()
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return cp
}

func (cp *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == statsPath {
		cp.mu.Lock()
		s := cp.stats
		if r.URL.Query().Get("reset") == "1" {
			cp.stats = reqStats{Count: map[string]int64{}}
		}
		cp.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
		return
	}
	kind := classify(r)
	cp.mu.Lock()
	cp.stats.Count[kind]++
	cp.mu.Unlock()
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingBody{ReadCloser: r.Body, p: cp}
	}
	cp.rp.ServeHTTP(w, r)
}

// proxyMain is "bench proxy TARGET": it listens on a free loopback port,
// prints "http://ADDR" on stdout and serves until killed.
func proxyMain(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: bench proxy http://TARGET")
	}
	target, err := url.Parse(args[0])
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "http://%s\n", l.Addr())
	srv := &http.Server{Handler: newCountingProxy(target), ErrorLog: log.New(io.Discard, "", 0)}
	return srv.Serve(l)
}
