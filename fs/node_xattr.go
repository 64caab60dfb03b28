package fs

import (
	"context"
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ampfs/ampfs/fs/access"
)

// Extended attributes. user.* attributes are stored in the object's user
// metadata as s3fs stores them (one x-amz-meta-xattr header holding the
// URL-encoded JSON object {"name":"base64 value",...}), so both see the
// same ones. S3 limits user metadata to 2 KiB in all
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html):
// a setxattr that would pass it fails with E2BIG. Other namespaces
// (security.*, system.*, trusted.*) have no place on S3: setting, reading
// and removing them is ENOTSUP ("not supported here"), not ENODATA ("this
// file has none"). The difference is worth a FUSE round trip per file and
// attribute: GNU ls -l asks for security.selinux and system.posix_acl_access
// of every file it lists, and stops asking for the rest of the file system
// once one answer says ENOTSUP (coreutils ls.c, getfilecon_cache and
// file_has_acl_cache). The kernel's reads of security.capability on write
// take ENOTSUP as "no capabilities" too.
//
// Two attributes are computed and read-only:
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

// maxUserMetadata is S3's limit on the user metadata of an object: the
// bytes of every name and value.
const maxUserMetadata = 2048

// Getxattr serves the read-only user.ampfs.* attributes and the stored
// user.* ones.
func (f *File) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	var val []byte
	switch attr {
	case xattrETag:
		f.mu.Lock()
		val = []byte(f.info.ETag)
		if f.staged != nil && f.staged.Dirty() {
			val = nil
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
		val = []byte(u)
	default:
		if !strings.HasPrefix(attr, "user.") {
			return 0, syscall.ENOTSUP
		}
		if errno := f.loadMeta(ctx); errno != 0 {
			return 0, errno
		}
		f.mu.Lock()
		v, ok := f.md.xattrs[attr]
		f.mu.Unlock()
		if !ok {
			return 0, syscall.ENODATA
		}
		val = v
	}
	return xattrReply(dest, val)
}

func xattrReply(dest, val []byte) (uint32, syscall.Errno) {
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
	if errno := f.loadMeta(ctx); errno != 0 {
		return 0, errno
	}
	names := xattrETag + "\x00"
	if f.fsys.opts.Presign != nil {
		names += xattrURL + "\x00"
	}
	f.mu.Lock()
	user := make([]string, 0, len(f.md.xattrs))
	for n := range f.md.xattrs {
		user = append(user, n)
	}
	f.mu.Unlock()
	sort.Strings(user)
	for _, n := range user {
		names += n + "\x00"
	}
	return xattrReply(dest, []byte(names))
}

// Setxattr stores a user.* attribute in the object's metadata.
func (f *File) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if attr == xattrETag || attr == xattrURL {
		return syscall.EPERM
	}
	if !strings.HasPrefix(attr, "user.") || len(attr) == len("user.") {
		return syscall.ENOTSUP
	}
	return f.changeXattr(ctx, attr, data, flags, false)
}

// Removexattr removes a stored user.* attribute.
func (f *File) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if attr == xattrETag || attr == xattrURL {
		return syscall.EPERM
	}
	if !strings.HasPrefix(attr, "user.") {
		// ENOTSUP, not ENODATA: cp -a removes system.posix_acl_default
		// and takes ENOTSUP as "no ACLs here", anything else as failure.
		return syscall.ENOTSUP
	}
	return f.changeXattr(ctx, attr, nil, 0, true)
}

// Directories have no xattrs of their own (their marker could hold them;
// not done yet): reads of user.* find none, other namespaces are ENOTSUP as
// for files, changes are ENOTSUP.
func (d *Dir) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if !strings.HasPrefix(attr, "user.") {
		return 0, syscall.ENOTSUP
	}
	return 0, syscall.ENODATA
}

// Listxattr lists nothing.
func (d *Dir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, 0
}

// Setxattr refuses.
func (d *Dir) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.ENOTSUP
}

// Removexattr refuses (see File.Removexattr for why not ENODATA).
func (d *Dir) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.ENOTSUP
}

func (f *File) changeXattr(ctx context.Context, attr string, data []byte, flags uint32, remove bool) syscall.Errno {
	ctx = uninterrupted(ctx)
	if errno := f.fsys.may(f.key(), access.Write); errno != 0 {
		return errno
	}
	if errno := f.loadMeta(ctx); errno != 0 {
		return errno
	}
	f.mu.Lock()
	_, exists := f.md.xattrs[attr]
	switch {
	case remove && !exists, !remove && flags&unix.XATTR_REPLACE != 0 && !exists:
		f.mu.Unlock()
		return syscall.ENODATA
	case !remove && flags&unix.XATTR_CREATE != 0 && exists:
		f.mu.Unlock()
		return syscall.EEXIST
	}
	x := make(map[string][]byte, len(f.md.xattrs)+1)
	for k, v := range f.md.xattrs {
		x[k] = v
	}
	if remove {
		delete(x, attr)
	} else {
		x[attr] = append([]byte(nil), data...)
	}
	md := f.md
	md.xattrs = x
	if metadataSize(f.fsys.headers(md, f.modeLocked(), f.mtimeLocked())) > maxUserMetadata {
		f.mu.Unlock()
		return syscall.E2BIG
	}
	f.md = md
	f.mu.Unlock()
	return f.saveMeta(ctx)
}

// metadataSize is what S3 counts against maxUserMetadata.
func metadataSize(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
}

// encodeXattrs writes s3fs's format: URL-encoded {"name":"base64",...}.
func encodeXattrs(x map[string][]byte) string {
	names := make([]string, 0, len(x))
	for n := range x {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + n + `":"` + base64.StdEncoding.EncodeToString(x[n]) + `"`)
	}
	b.WriteByte('}')
	return urlEncode(b.String())
}

// urlEncode escapes all but RFC 3986's unreserved characters, as s3fs's
// urlEncode does (header values must be ASCII).
func urlEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// decodeXattrs reads s3fs's format; what does not parse is dropped.
func decodeXattrs(raw string) map[string][]byte {
	s, err := url.PathUnescape(strings.TrimSpace(raw))
	if err != nil {
		s = raw
	}
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return nil
	}
	out := map[string][]byte{}
	for _, pair := range strings.Split(s[1:len(s)-1], ",") {
		name, val, ok := strings.Cut(pair, ":")
		if !ok {
			continue
		}
		name = strings.Trim(strings.TrimSpace(name), `"`)
		val = strings.Trim(strings.TrimSpace(val), `"`)
		v, err := base64.StdEncoding.DecodeString(val)
		if name == "" || err != nil {
			continue
		}
		out[name] = v
	}
	return out
}
