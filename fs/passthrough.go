package fs

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// # Passthrough
//
// A file opened read-only whose current version has a whole local copy in
// the disk cache (cache.WholeFile) is handed to the kernel with FUSE
// passthrough (Linux 6.9+, root): the kernel reads the local file itself
// and no READ reaches this process. Where passthrough is not available,
// such a handle's reads are served from the local file with pread.
//
// We register the backing file ourselves rather than through go-fuse's
// FilePassthroughFder: go-fuse keeps one backing id per inode until its
// last passthrough handle is released, after our Release has returned, so
// an open racing that release would get the previous version's backing
// file. Here the id, its version and its users are File fields under
// File.mu (ptID, ptETag, ptHandles), and rawFS.Open puts the id in the
// reply.
//
// The kernel (fs/fuse/iomode.c) fails with EIO an open of an inode that
// has a passthrough file open unless it is a passthrough open too (with
// the same backing file), and a passthrough open of one with a cached-mode
// file open. So, per File, under File.mu:
//
//   - passthrough only for read-only opens of a file without staged data,
//     only while no cached-mode handle and no handle we do not track
//     (Create's, whose file is staged while it is open) is open, and only
//     for the version of the backing file registered, if any;
//   - while a backing file is registered, every other open gets
//     FOPEN_PASSTHROUGH|FOPEN_DIRECT_IO with it: direct I/O overrides
//     passthrough for read, write and splice, so these come to us (a
//     writer's writes go to its staging file as always). Its mmap,
//     though, maps the backing file: a writable shared mapping made then
//     would change the local copy and not the object. Such a copy is
//     dropped from the cache when the last handle closes, and the README
//     says to avoid mmap writes beside readers.
//
// Our counts drop at RELEASE, after the kernel has closed its file, so they
// never undercount what the kernel has open; the backing id is
// unregistered when the last handle using it is released. A descriptor
// opened with passthrough reads the version it was opened with until it
// is closed, also while another descriptor writes the file.

// openMode is how the kernel was told to use a handle.
type openMode uint8

const (
	modeUntracked   openMode = iota // Create's handles: the file is staged while one is open
	modeCached                      // the kernel's page cache
	modeDirect                      // FOPEN_PASSTHROUGH|FOPEN_DIRECT_IO: beside a passthrough handle
	modePassthrough                 // FOPEN_PASSTHROUGH
)

// rawFS is go-fuse's raw file system with Open wrapped, to put the backing
// id of a passthrough open into the reply (go-fuse's Open only does so for
// its own FilePassthroughFder handles, which we do not use).
type rawFS struct {
	fuse.RawFileSystem
	fsys *FS
}

// openSlot carries a backing id from File.Open to rawFS.Open.
type openSlot struct{ backingID int32 }

func (r *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	slot := &openSlot{}
	r.fsys.opening.Store(cancel, slot) // the request's own channel: File.Open finds it in its ctx
	st := r.RawFileSystem.Open(cancel, in, out)
	r.fsys.opening.Delete(cancel)
	if st == fuse.OK && slot.backingID != 0 {
		out.BackingID = slot.backingID
	}
	return st
}

// passthrough is the file system's side of passthrough: the server to
// register backing files with, and the counters.
type passthrough struct {
	server   atomic.Pointer[fuse.Server]
	disabled atomic.Bool // off by option, or the kernel refused once
	once     sync.Once   // logs why it is off

	opens, direct, reads, wholeReads atomic.Int64
}

// slotOf returns the open slot of the FUSE request ctx belongs to, nil if
// none (not an OPEN through rawFS).
func (fsys *FS) slotOf(ctx context.Context) *openSlot {
	fc, ok := ctx.(*fuse.Context)
	if !ok || fc.Cancel == nil {
		return nil
	}
	v, ok := fsys.opening.Load(fc.Cancel)
	if !ok {
		return nil
	}
	return v.(*openSlot)
}

// registerBacking registers fd with the kernel as a backing file; false
// when passthrough is off or unavailable (then it stays off).
func (fsys *FS) registerBacking(fd int) (int32, bool) {
	pt := &fsys.pt
	srv := pt.server.Load()
	if pt.disabled.Load() || srv == nil {
		return 0, false
	}
	if srv.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
		fsys.passthroughOff("the kernel does not offer FUSE passthrough", 0)
		return 0, false
	}
	id, errno := srv.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
	if errno != 0 || id <= 0 {
		fsys.passthroughOff("the kernel refused a backing file (passthrough needs CAP_SYS_ADMIN, and a cache dir not on a stacked file system)", errno)
		return 0, false
	}
	return id, true
}

func (fsys *FS) unregisterBacking(id int32) {
	if srv := fsys.pt.server.Load(); srv != nil {
		if errno := srv.UnregisterBackingFd(id); errno != 0 {
			fsys.log.Debug().Int32("backing_id", id).Err(errno).Msg("unregistering a passthrough backing file")
		}
	}
}

func (fsys *FS) passthroughOff(why string, errno syscall.Errno) {
	fsys.pt.disabled.Store(true)
	fsys.pt.once.Do(func() {
		ev := fsys.log.Info()
		if errno != 0 {
			ev = ev.Err(errno)
		}
		ev.Msg(why + "; whole local files are read through ampfs instead")
	})
}

// Stats are the file system's read counters since it was made.
type Stats struct {
	Reads            int64 // FUSE READ requests served
	WholeReads       int64 // of those, served from a whole local file
	PassthroughOpens int64 // opens handed to the kernel (FOPEN_PASSTHROUGH)
	DirectOpens      int64 // opens given FOPEN_DIRECT_IO beside a passthrough one
}

// Stats returns a snapshot of the counters.
func (fsys *FS) Stats() Stats {
	pt := &fsys.pt
	return Stats{Reads: pt.reads.Load(), WholeReads: pt.wholeReads.Load(), PassthroughOpens: pt.opens.Load(), DirectOpens: pt.direct.Load()}
}
