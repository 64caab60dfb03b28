package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// dirHandle is an open directory. go-fuse's own handle (what a plain
// NodeReaddirer gets) cannot answer the lookups of a READDIRPLUS reply
// itself, which we need to leave out the attributes a HEAD would have to
// supply (meta_lazy.go); this one does, and it passes seekdir through.
type dirHandle struct {
	d *Dir
	// ds is the listing, read at the first Readdirent (go-fuse serializes
	// the calls on one handle, and Releasedir comes after the last).
	ds fusefs.DirStream
}

var (
	_ fusefs.NodeOpendirHandler = (*Dir)(nil)
	_ fusefs.FileReaddirenter   = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer      = (*dirHandle)(nil)
	_ fusefs.FileReleasedirer   = (*dirHandle)(nil)
	_ fusefs.FileLookuper       = (*dirHandle)(nil)
)

// OpendirHandle opens the directory; the listing is read on the first
// readdir, where an error can be returned to the reader.
func (d *Dir) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{d: d}, 0, 0
}

func (h *dirHandle) stream(ctx context.Context) syscall.Errno {
	if h.ds != nil {
		return 0
	}
	ds, errno := h.d.Readdir(ctx)
	if errno != 0 {
		return errno
	}
	h.ds = ds
	return 0
}

// Readdirent returns the next entry, nil at the end.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if errno := h.stream(ctx); errno != 0 {
		return nil, errno
	}
	if !h.ds.HasNext() {
		return nil, 0
	}
	e, errno := h.ds.Next()
	return &e, errno
}

// Seekdir moves to offset off (rewinddir, or a telldir'ed position).
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if errno := h.stream(ctx); errno != 0 {
		return errno
	}
	if sd, ok := h.ds.(fusefs.FileSeekdirer); ok {
		return sd.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

// Releasedir ends the listing's use by this reader.
func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if h.ds != nil {
		h.ds.Close()
	}
}

// Lookup answers the lookups of a READDIRPLUS reply: as Dir.Lookup,
// except that entries whose metadata would need a HEAD go out without
// attributes (see metaDeferred).
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if h.d.metaDeferred(name) {
		// Any error leaves the node id zero; the name stays in the reply
		// and the kernel looks it up when something stats it.
		return nil, syscall.EAGAIN
	}
	return h.d.Lookup(ctx, name, out)
}
