package fs

import (
	"context"
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ampfs/ampfs/store"
)

// errnoTable maps the store's sentinel errors to errno values, in order of
// precedence. See store/errors.go for what each sentinel means.
var errnoTable = []struct {
	err   error
	errno syscall.Errno
}{
	{store.ErrNotFound, syscall.ENOENT},
	{store.ErrAccessDenied, syscall.EACCES},
	{store.ErrBadCredentials, syscall.EACCES},
	{store.ErrPreconditionFailed, syscall.ESTALE}, // the object changed under an open file
	{store.ErrInvalidRange, syscall.EIO},
	{store.ErrInvalidArgument, syscall.EINVAL},
	{store.ErrTooLarge, syscall.EFBIG},
	{store.ErrCanceled, syscall.EINTR},
	{context.Canceled, syscall.EINTR},
	{context.DeadlineExceeded, syscall.ETIMEDOUT},
	{store.ErrNoSuchBucket, syscall.EIO},
	{store.ErrNoSuchUpload, syscall.EIO},
	{store.ErrUnavailable, syscall.EIO},
}

// toErrno is the whole error policy: store and cache errors become errno
// values here and nowhere else. Local file errors (a full staging disk)
// keep their errno. Anything unknown is EIO, never ENOSYS.
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if errno == syscall.ENOSYS {
			return syscall.EIO
		}
		return errno
	}
	for _, e := range errnoTable {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return syscall.ENOENT
	}
	return syscall.EIO
}

// uninterrupted detaches an operation from FUSE interrupts. The kernel
// sends one whenever the calling thread gets a signal, also one it handles
// and restarts after (Go's runtime signals its threads to preempt
// goroutines), go-fuse then cancels the request's context, and the caller
// still waits for our answer. So an operation that changes the server,
// or whose EINTR no program retries (close) or expects (the lookups of
// stat and open, readdir, fsync), runs to its end under this context: an EINTR
// would report a change that may have happened as failed, or fail a
// program for a signal it handled. Reads of data keep the caller's
// context, so an interrupted read stops its GET (cache/doc.go).
func uninterrupted(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// errno maps err for operation op on key and logs what the caller will not
// see: an EIO loses the cause, so its cause is logged at error level.
func (fsys *FS) errno(op, key string, err error) syscall.Errno {
	e := toErrno(err)
	if e != 0 && fsys.opts.OnErrno != nil && !(e == syscall.ENOENT && op == "lookup") {
		fsys.opts.OnErrno(op, unix.ErrnoName(e))
	}
	switch e {
	case 0, syscall.ENOENT, syscall.EINTR:
	case syscall.EIO, syscall.ETIMEDOUT:
		fsys.log.Error().Str("op", op).Str("key", key).Err(err).Str("hint", hint(err)).Msg("I/O error")
	default:
		fsys.log.Warn().Str("op", op).Str("key", key).Err(err).Str("errno", e.Error()).Str("hint", hint(err)).Msg("operation failed")
	}
	return e
}

// hint says what a user can do about an error, for its log line. (The
// error itself carries the S3 operation, code and request id.)
func hint(err error) string {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return "the S3 endpoint did not answer (after retries): check the network and the server; closed files stay journaled and are uploaded when it is back"
	case errors.Is(err, store.ErrAccessDenied):
		return "the bucket's policy denies this to these credentials: check the identity's rights"
	case errors.Is(err, store.ErrBadCredentials):
		return "the credentials were rejected or expired: run 'ampfs login' again, or check the AWS keys"
	case errors.Is(err, store.ErrNoSuchBucket):
		return "the bucket no longer exists"
	case errors.Is(err, store.ErrPreconditionFailed):
		return "the object changed on the server while open: reopen the file"
	case errors.Is(err, store.ErrTooLarge):
		return "S3 limits objects to 5 TiB"
	case errors.Is(err, syscall.ENOSPC):
		return "the cache directory's disk is full: free space there or use --cache-dir elsewhere"
	}
	return ""
}
