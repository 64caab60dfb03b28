package fs

import (
	"bytes"
	"context"
	"io"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ampfs/ampfs/fs/access"
	"github.com/ampfs/ampfs/store"
)

// Symlinks are stored as s3fs stores them: an object whose mode says
// S_IFLNK and whose body is the target. They are File nodes whose inode
// type is S_IFLNK; the kernel never opens them.

// maxSymlinkTarget is Linux's PATH_MAX: a longer body is not a target.
const maxSymlinkTarget = 4096

// Symlink writes the link object at once (it is small, and a link that
// vanished at a crash would surprise more than a slow ln -s).
func (d *Dir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	if errno := nameErrno(name); errno != 0 {
		return nil, errno
	}
	if len(target) == 0 || len(target) >= maxSymlinkTarget {
		return nil, syscall.ENAMETOOLONG
	}
	p := d.childPath(name)
	if errno := d.fsys.real(p); errno != 0 {
		return nil, errno
	}
	key := d.fsys.fileKey(p)
	if errno := d.fsys.may(key, access.Write); errno != 0 {
		return nil, errno
	}
	if ch := d.GetChild(name); ch != nil {
		if f, ok := ch.Operations().(*File); ok && f.hasLocalData() {
			return nil, syscall.EEXIST
		}
	}
	md := meta{mode: syscall.S_IFLNK | 0o777, mtime: d.fsys.now()}
	const ct = "application/octet-stream"
	info, err := d.fsys.bucket.Put(ctx, key, bytes.NewReader([]byte(target)), int64(len(target)),
		store.PutOptions{ContentType: ct, Metadata: d.fsys.headers(md, md.mode, md.mtime)})
	if err != nil {
		return nil, d.fsys.errno("symlink", key, err)
	}
	info.Key, info.ContentType, info.Size = key, ct, int64(len(target))
	d.fsys.metas.remember(info, md, false)
	f := &File{node: node{fsys: d.fsys}, info: info, lastKey: key, md: md, metaKnown: true, target: target}
	if old := d.GetChild(name); old != nil {
		if of, ok := old.Operations().(*File); ok {
			of.discard()
		}
	}
	ch := d.NewInode(ctx, f, fusefs.StableAttr{Mode: syscall.S_IFLNK})
	f.fillAttr(&out.Attr)
	d.note(name, &entry{info: info, md: md, known: true})
	return ch, 0
}

// Readlink returns the target: the object's body, read once per version.
func (f *File) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	f.mu.Lock()
	target, info := f.target, f.info
	f.mu.Unlock()
	if target != "" {
		return []byte(target), 0
	}
	key := f.key()
	if errno := f.fsys.may(key, access.Get); errno != 0 {
		return nil, errno
	}
	body, _, err := f.fsys.bucket.Get(ctx, key, 0, -1, store.GetOptions{IfMatch: info.ETag})
	if err != nil {
		return nil, f.fsys.errno("readlink", key, err)
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, maxSymlinkTarget))
	if err != nil {
		return nil, f.fsys.errno("readlink", key, err)
	}
	f.mu.Lock()
	if f.info.ETag == info.ETag {
		f.target = string(data)
	}
	f.mu.Unlock()
	return data, 0
}
