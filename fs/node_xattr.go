package fs

import (
	"context"
	"syscall"
	"time"

	"github.com/ampfs/ampfs/fs/access"
)

// The xattrs ampfs serves on files, read-only:
//
//	user.ampfs.etag  the object's ETag (empty while changes are not uploaded)
//	user.ampfs.url   a presigned GET URL valid for urlXattrExpiry
const (
	xattrETag = "user.ampfs.etag"
	xattrURL  = "user.ampfs.url"
)

// urlXattrExpiry is the lifetime of a URL read as an xattr; `ampfs url
// --expires` chooses others.
const urlXattrExpiry = time.Hour

// Getxattr serves the read-only user.ampfs.* attributes.
func (f *File) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	var val string
	switch attr {
	case xattrETag:
		f.mu.Lock()
		val = f.info.ETag
		if f.staged != nil && f.staged.Dirty() {
			val = ""
		}
		f.mu.Unlock()
	case xattrURL:
		if f.fsys.opts.Presign == nil {
			return 0, syscall.ENODATA
		}
		key := f.key()
		if errno := f.fsys.may(key, access.Get); errno != 0 {
			return 0, errno
		}
		u, err := f.fsys.opts.Presign(ctx, key, urlXattrExpiry)
		if err != nil {
			return 0, f.fsys.errno("getxattr", key, err)
		}
		val = u
	default:
		return 0, syscall.ENODATA
	}
	if len(dest) == 0 {
		return uint32(len(val)), 0 // the caller asks for the size first
	}
	if len(dest) < len(val) {
		return uint32(len(val)), syscall.ERANGE
	}
	return uint32(copy(dest, val)), 0
}

// Listxattr names the attributes Getxattr serves.
func (f *File) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	names := xattrETag + "\x00"
	if f.fsys.opts.Presign != nil {
		names += xattrURL + "\x00"
	}
	if len(dest) == 0 {
		return uint32(len(names)), 0
	}
	if len(dest) < len(names) {
		return uint32(len(names)), syscall.ERANGE
	}
	return uint32(copy(dest, names)), 0
}

// Setxattr refuses: the user.ampfs.* attributes are computed, and storing
// others as object metadata is not supported yet.
func (f *File) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if attr == xattrETag || attr == xattrURL {
		return syscall.EPERM
	}
	return syscall.ENOTSUP
}
