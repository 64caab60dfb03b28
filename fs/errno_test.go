package fs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/ampfs/ampfs/store"
)

func TestToErrno(t *testing.T) {
	wrapped := func(kind error) error {
		return fmt.Errorf("flush: %w", &store.OpError{Op: "PutObject", Key: "k", Kind: kind, Err: errors.New("cause")})
	}
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"not found", wrapped(store.ErrNotFound), syscall.ENOENT},
		{"access denied", wrapped(store.ErrAccessDenied), syscall.EACCES},
		{"bad credentials", wrapped(store.ErrBadCredentials), syscall.EACCES},
		{"changed", wrapped(store.ErrPreconditionFailed), syscall.ESTALE},
		{"invalid range", wrapped(store.ErrInvalidRange), syscall.EIO},
		{"invalid argument", wrapped(store.ErrInvalidArgument), syscall.EINVAL},
		{"too large", wrapped(store.ErrTooLarge), syscall.EFBIG},
		{"store canceled", wrapped(store.ErrCanceled), syscall.EINTR},
		{"context canceled", fmt.Errorf("x: %w", context.Canceled), syscall.EINTR},
		{"deadline", context.DeadlineExceeded, syscall.ETIMEDOUT},
		{"no bucket", wrapped(store.ErrNoSuchBucket), syscall.EIO},
		{"no upload", wrapped(store.ErrNoSuchUpload), syscall.EIO},
		{"unavailable", wrapped(store.ErrUnavailable), syscall.EIO},
		{"disk full", &fs.PathError{Op: "write", Path: "/cache/x", Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"errno", syscall.ENOTEMPTY, syscall.ENOTEMPTY},
		{"ENOSYS never leaks", syscall.ENOSYS, syscall.EIO},
		{"os not exist", fmt.Errorf("open: %w", os.ErrNotExist), syscall.ENOENT},
		{"unknown", errors.New("something else"), syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := toErrno(tt.err); got != tt.want {
				t.Errorf("toErrno(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestHints(t *testing.T) {
	for _, kind := range []error{store.ErrUnavailable, store.ErrAccessDenied, store.ErrBadCredentials, store.ErrNoSuchBucket, store.ErrPreconditionFailed} {
		if hint(&store.OpError{Op: "GetObject", Kind: kind}) == "" {
			t.Errorf("no hint for %v", kind)
		}
	}
	if hint(errors.New("other")) != "" {
		t.Error("a hint for an unknown error")
	}
}
