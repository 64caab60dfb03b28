package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

func TestUnescapeMount(t *testing.T) {
	tests := map[string]string{
		"/mnt/plain":         "/mnt/plain",
		`/mnt/with\040space`: "/mnt/with space",
		`/mnt/tab\011x`:      "/mnt/tab\tx",
		`/mnt/back\134slash`: `/mnt/back\slash`,
	}
	for in, want := range tests {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMountedAt(t *testing.T) {
	if _, _, ok := mountedAt("/proc"); !ok {
		t.Error("/proc is not reported as mounted")
	}
	if _, _, ok := mountedAt(t.TempDir()); ok {
		t.Error("a fresh temp dir is reported as mounted")
	}
}

// Each failure of the bucket check is one line that names the problem and
// the fix.
func TestCheckBucketMessages(t *testing.T) {
	tests := []struct {
		fault error
		want  string
	}{
		{&store.OpError{Op: "HeadBucket", Kind: store.ErrNoSuchBucket, Code: "NoSuchBucket"}, "does not exist"},
		{&store.OpError{Op: "HeadBucket", Kind: store.ErrBadCredentials, Code: "SignatureDoesNotMatch"}, "rejected the credentials (SignatureDoesNotMatch)"},
		{&store.OpError{Op: "HeadBucket", Kind: store.ErrBadCredentials}, "no usable AWS credentials"},
		{&store.OpError{Op: "HeadBucket", Kind: store.ErrAccessDenied, Code: "AccessDenied"}, "denied"},
		{&store.OpError{Op: "HeadBucket", Kind: store.ErrUnavailable, Err: fmt.Errorf("dial: %w", errors.New("connection refused"))}, "cannot reach S3 endpoint http://x (connection refused)"},
	}
	for _, tt := range tests {
		b := memstore.New(memstore.Options{Name: "b"})
		b.SetFault(memstore.OpHeadBucket, tt.fault, 1)
		err := checkBucket(context.Background(), b, "", "http://x", time.Second)
		if err == nil {
			t.Fatalf("%v: no error", tt.fault)
		}
		msg := oneLine(err)
		if !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "ampfs: ") {
			t.Errorf("%v: message %q, want it to contain %q", tt.fault, msg, tt.want)
		}
	}
}
