package fs

import (
	"context"
	"errors"
	"io"
	"mime"
	"path"
	"strconv"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ampfs/ampfs/cache"
	"github.com/ampfs/ampfs/fs/access"
	"github.com/ampfs/ampfs/store"
)

// File is a regular file: one object, plus staged local changes.
type File struct {
	node

	mu sync.Mutex
	// info is the object as last seen on the server (or as we uploaded
	// it). GUARDED_BY(mu)
	info store.ObjectInfo
	// staged holds the file's data while it is open for writing or has
	// changes not yet uploaded; nil otherwise. GUARDED_BY(mu)
	staged *cache.Staged
	// mtime is the modification time shown; zero means md.mtime, else
	// info.LastModified. GUARDED_BY(mu)
	mtime time.Time
	// md is the object's POSIX metadata (mode, owner, stored mtime,
	// xattrs), as stored or as changed here. GUARDED_BY(mu)
	md meta
	// metaKnown is false while md is only the defaults a listing implies:
	// a HEAD must read it before it is changed or xattrs are served.
	// GUARDED_BY(mu)
	metaKnown bool
	// metaDirty is set when md changed while the data was not uploaded:
	// the next commit must carry it. GUARDED_BY(mu)
	metaDirty bool
	// target is a symlink's target once read or written. GUARDED_BY(mu)
	target string
	// handles counts open file handles. GUARDED_BY(mu)
	handles int
	// unlinked is set once the file is deleted or replaced: handles still
	// open keep its staged data, if any, which is never uploaded.
	// GUARDED_BY(mu)
	unlinked bool
	// lastKey is the key the file had when last attached. GUARDED_BY(mu)
	lastKey string
	// keptETag is the version whose pages the kernel holds. GUARDED_BY(mu)
	keptETag string
	// Open handles by how the kernel uses them, and the passthrough
	// backing file registered for the inode: its id and version
	// (passthrough.go). GUARDED_BY(mu)
	cachedHandles, directHandles, ptHandles int
	ptID                                    int32
	ptETag                                  string
	// ptTainted is set when a writable open joined the passthrough
	// handles: its mmap maps the backing file (passthrough.go).
	// GUARDED_BY(mu)
	ptTainted bool
}

// key is the file's object key, from its place in the tree. A file the
// kernel has forgotten while it still had changes that failed to upload is
// no longer in the tree; it keeps the key it last had, so that a later
// flush (FlushAll at unmount) still uploads it to the right place.
func (f *File) key() string {
	if _, parent := f.Parent(); parent == nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.lastKey
	}
	k := f.fsys.fileKey(f.path())
	f.mu.Lock()
	f.lastKey = k
	f.mu.Unlock()
	return k
}

// hasLocalData reports whether the file has staged data the server may not
// have: it must not be replaced by what a listing says.
func (f *File) hasLocalData() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.staged != nil && f.staged.Dirty()
}

// update takes new server info from a lookup, unless local data wins.
// Metadata that is not known (a listing) does not replace known metadata
// of the same version.
func (f *File) update(info store.ObjectInfo, md meta, known bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.staged != nil || f.metaDirty {
		return
	}
	if info.ETag == "" {
		// Not the server's word: a listing entry this mount noted for its
		// own create or rename (no size yet). The node knows better.
		return
	}
	changed := info.ETag != f.info.ETag || (!info.LastModified.IsZero() && !info.LastModified.Equal(f.info.LastModified))
	if changed {
		f.mtime = time.Time{}
		f.target = ""
		f.md, f.metaKnown = meta{}, false
	}
	if known {
		f.md, f.metaKnown, f.mtime = md, true, time.Time{}
	}
	if info.ContentType == "" {
		info.ContentType = f.info.ContentType
	}
	f.info = info
}

// modeLocked is the mode stored or to store: type and permission bits.
// The caller holds f.mu.
func (f *File) modeLocked() uint32 {
	if f.md.mode&syscall.S_IFMT == syscall.S_IFLNK {
		return f.md.mode
	}
	perm := f.fsys.opts.FileMode
	if f.md.mode != 0 {
		perm = f.md.mode & 0o7777
	}
	return syscall.S_IFREG | perm
}

// mtimeLocked is the modification time shown. The caller holds f.mu.
func (f *File) mtimeLocked() time.Time {
	switch {
	case !f.mtime.IsZero():
		return f.mtime
	case !f.md.mtime.IsZero():
		return f.md.mtime
	}
	return f.info.LastModified
}

func (f *File) isSymlink() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.md.isSymlink()
}

func (f *File) fillAttr(out *fuse.Attr) {
	f.mu.Lock()
	size, mtime, mode, md, unlinked := f.info.Size, f.mtimeLocked(), f.modeLocked(), f.md, f.unlinked
	if f.staged != nil {
		size = f.staged.Size()
	}
	if mode&syscall.S_IFMT == syscall.S_IFLNK && f.target != "" {
		size = int64(len(f.target))
	}
	f.mu.Unlock()
	// The rules cap what chmod stored: a tree the user may only read
	// shows no write bits.
	r := f.fsys.layout.Rights(f.key())
	rights := permBits(r, false)
	if r.Has(access.Get) {
		rights |= 0o111 // execute needs only read; the stored mode decides
	}
	if mode&syscall.S_IFMT == syscall.S_IFLNK {
		rights = 0o777
	}
	f.fsys.fillAttr(out, mode&^0o777|mode&0o777&rights, size, mtime)
	if md.hasUID {
		out.Uid = md.uid
	}
	if md.hasGID {
		out.Gid = md.gid
	}
	if unlinked {
		// Deleted, or replaced by a rename, while open: fstat of a
		// descriptor still open shows it is in no directory.
		out.Nlink = 0
	}
}

// loadMeta reads the object's metadata with a HEAD when only a listing's
// defaults are known, so a change never drops what another client stored.
func (f *File) loadMeta(ctx context.Context) syscall.Errno {
	f.mu.Lock()
	known, info := f.metaKnown || f.staged != nil, f.info
	f.mu.Unlock()
	if known || info.ETag == "" {
		return 0
	}
	key := f.key()
	head, err := f.fsys.bucket.Head(ctx, key)
	if err != nil {
		return f.fsys.errno("head", key, err)
	}
	md, _ := f.fsys.metaOf(head)
	f.update(head, md, true)
	return 0
}

// saveMeta persists md: folded into the pending commit while data is not
// uploaded, else a metadata-only copy of the object onto itself (S3's
// CopyObject with MetadataDirective REPLACE, as s3fs does).
func (f *File) saveMeta(ctx context.Context) syscall.Errno {
	f.mu.Lock()
	s, handles := f.staged, f.handles
	if f.unlinked {
		f.mu.Unlock()
		return 0 // a deleted file's metadata goes nowhere
	}
	if s != nil {
		s.Ref() // our own: the last release may drop the file's meanwhile
		defer s.Close()
	}
	info, md, mode, mtime := f.info, f.md, f.modeLocked(), f.mtimeLocked()
	f.mu.Unlock()
	key := f.key()
	if s == nil {
		// The last release may have dropped the staging file while an
		// upload of it is still to come (committed again during the
		// previous one): that upload carries the metadata of its
		// commit, and would land after a copy made here.
		if ps, ok := f.fsys.cache.Pending(key); ok {
			s = ps
			defer ps.Close()
		}
	}
	// While an upload of the data is to come, the change goes with it:
	// also when the upload has just finished and its onDone has not
	// given the file its new ETag yet (a copy would find none, or the
	// old one).
	if s != nil && (s.Dirty() || f.fsys.cache.Committed(key) > 0) {
		f.mu.Lock()
		f.metaDirty = true
		if f.staged == nil && !f.unlinked {
			f.staged = s.Ref() // dropped meanwhile: flush commits this one
		}
		f.mu.Unlock()
		if handles > 0 && s.Gen() != s.Committed() {
			// Writes not committed yet: the writer's close commits them,
			// and the change with them. (Without such writes the last
			// close may have come already: RELEASE, which counts the
			// handle down, reaches us after close(2) has returned, so a
			// chmod right after a close still sees the handle.)
			return 0
		}
		return f.flush(ctx, f.fsys.opts.SyncOnClose)
	}
	if info.ETag == "" {
		return 0
	}
	ct := info.ContentType
	if ct == "" {
		ct = contentType(key)
	}
	newInfo, err := f.fsys.bucket.Copy(ctx, key, key, store.CopyOptions{
		IfMatch: info.ETag, ReplaceMetadata: true, ContentType: ct,
		Metadata: f.fsys.headers(md, mode, mtime),
	})
	if err != nil {
		return f.fsys.errno("setattr", key, err)
	}
	if newInfo.Size == 0 {
		newInfo.Size = info.Size
	}
	newInfo.Key, newInfo.ContentType = key, ct
	md.mode, md.mtime = mode, mtime
	f.fsys.metas.remember(newInfo, md, !newInfo.LastModified.IsZero())
	f.mu.Lock()
	if f.info.ETag == info.ETag {
		f.info, f.md, f.metaKnown, f.mtime = newInfo, md, true, time.Time{}
	}
	f.mu.Unlock()
	f.noteInParent(newInfo)
	return 0
}

// Getattr reports size and times, the staged ones while writing.
func (f *File) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.fillAttr(&out.Attr)
	return 0
}

// Setattr truncates, and sets mode, owner and times, stored as s3fs stores
// them (see meta.go and saveMeta).
func (f *File) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	if errno := f.fsys.may(f.key(), access.Write); errno != 0 {
		return errno
	}
	mode, setMode := in.GetMode()
	uid, setUID := in.GetUID()
	gid, setGID := in.GetGID()
	mtime, setMtime := in.GetMTime()
	if setMode || setUID || setGID || setMtime {
		if errno := f.loadMeta(ctx); errno != 0 {
			return errno
		}
	}
	if size, ok := in.GetSize(); ok {
		s, err := f.stage(ctx, size == 0)
		if err != nil {
			return f.fsys.errno("truncate", f.key(), err)
		}
		if err := s.Truncate(int64(size)); err != nil {
			return f.fsys.errno("truncate", f.key(), err)
		}
		f.touch()
		f.mu.Lock()
		byPath := fh == nil && f.handles == 0
		f.mu.Unlock()
		if byPath {
			// truncate(2) without an open file: no flush will follow.
			if errno := f.flush(ctx, f.fsys.opts.SyncOnClose); errno != 0 {
				return errno
			}
		}
	}
	if setMode || setUID || setGID || setMtime {
		f.mu.Lock()
		md := f.md
		if setMode {
			md.mode = f.modeLocked()&syscall.S_IFMT | mode&0o7777
		}
		if setUID {
			md.uid, md.hasUID = uid, true
		}
		if setGID {
			md.gid, md.hasGID = gid, true
		}
		if setMtime {
			f.mtime, md.mtime = mtime, mtime
		}
		f.md = md
		f.mu.Unlock()
		if errno := f.saveMeta(ctx); errno != 0 {
			return errno
		}
	}
	f.fillAttr(&out.Attr)
	return 0
}

// stage returns the file's staging file, creating it: empty when trunc,
// else a copy of the object.
func (f *File) stage(ctx context.Context, trunc bool) (*cache.Staged, error) {
	return f.stageTry(ctx, trunc, 0)
}

func (f *File) stageTry(ctx context.Context, trunc bool, attempt int) (*cache.Staged, error) {
	f.mu.Lock()
	if s := f.staged; s != nil {
		f.mu.Unlock()
		if trunc {
			if err := s.Truncate(0); err != nil {
				return nil, err
			}
		}
		return s, nil
	}
	info := f.info
	f.mu.Unlock()

	s, err := f.fsys.cache.NewStaged()
	if err != nil {
		return nil, err
	}
	if !trunc && info.ETag != "" {
		if err := f.fsys.cache.Fill(ctx, s, f.key(), info.ETag); err != nil {
			s.Close()
			f.mu.Lock()
			changedHere := f.staged != nil || f.info.ETag != info.ETag
			f.mu.Unlock()
			if errors.Is(err, store.ErrPreconditionFailed) && changedHere && attempt < 3 {
				// This mount changed the object while it was read (the
				// close of another descriptor uploaded it): start from
				// what it is now, as that descriptor's writes are ours
				// to see. (posixtest's ParallelFileOpen: open failed
				// with ESTALE.)
				return f.stageTry(ctx, trunc, attempt+1)
			}
			return nil, err
		}
	}
	f.mu.Lock()
	if f.staged != nil { // another open won the race
		s.Close()
		s = f.staged
		f.mu.Unlock()
		if trunc {
			return s, s.Truncate(0)
		}
		return s, nil
	}
	f.staged = s
	f.mu.Unlock()
	if s.Dirty() {
		f.fsys.setDirty(f, true)
	}
	return s, nil
}

func (f *File) touch() {
	f.mu.Lock()
	f.mtime = f.fsys.now()
	unlinked := f.unlinked
	f.mu.Unlock()
	if !unlinked { // a deleted file's changes go nowhere
		f.fsys.setDirty(f, true)
	}
}

// Open returns a handle; writing handles stage the file first.
func (f *File) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	trunc := flags&syscall.O_TRUNC != 0
	if flags&syscall.O_ACCMODE != syscall.O_WRONLY {
		if errno := f.fsys.may(f.key(), access.Get); errno != 0 {
			return nil, 0, errno
		}
	}
	if write || trunc {
		if errno := f.fsys.may(f.key(), access.Write); errno != 0 {
			return nil, 0, errno
		}
	}
	if write || trunc {
		s, err := f.stage(ctx, trunc)
		if err != nil {
			return nil, 0, f.fsys.errno("open", f.key(), err)
		}
		if trunc {
			s.MarkDirty()
			f.touch()
		}
	}
	h := &Handle{f: f}
	fuseFlags := f.openMode(ctx, h, !write && !trunc)
	return h, fuseFlags, 0
}

// openMode counts the handle in and picks how the kernel is to use it: a
// read-only open of a version with a whole local copy is passed through
// when it may be (passthrough.go), other opens are cached, or direct I/O
// while a passthrough handle is open.
func (f *File) openMode(ctx context.Context, h *Handle, readOnly bool) uint32 {
	var whole *cache.WholeFile
	f.mu.Lock()
	info, staged := f.info, f.staged
	f.mu.Unlock()
	if readOnly && staged == nil && info.ETag != "" {
		whole, _ = f.fsys.cache.OpenWhole(f.key(), info.ETag, info.Size)
	}
	var fuseFlags uint32
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handles++
	if whole != nil && (f.staged != nil || f.info.ETag != info.ETag) {
		whole.Close() // changed meanwhile
		whole = nil
	}
	h.whole, h.wholeETag = whole, info.ETag
	tracked := f.cachedHandles + f.directHandles + f.ptHandles
	slot := f.fsys.slotOf(ctx)
	if whole != nil && slot != nil && f.cachedHandles == 0 && tracked == f.handles-1 && (f.ptID == 0 || f.ptETag == info.ETag) {
		ok := f.ptID != 0
		if !ok {
			// Under f.mu: no other open of this file sees ptHandles 0
			// meanwhile.
			if id, registered := f.fsys.registerBacking(whole.Fd()); registered {
				f.ptID, f.ptETag, ok = id, info.ETag, true
			}
		}
		if ok {
			f.ptHandles++
			h.mode, slot.backingID = modePassthrough, f.ptID
			f.keptETag = "" // the kernel drops the page cache on this open
			f.fsys.pt.opens.Add(1)
			return fuse.FOPEN_PASSTHROUGH
		}
	}
	if f.ptID != 0 {
		// The kernel wants every open of the inode passed through to
		// its one backing file; FOPEN_DIRECT_IO makes reads and writes
		// come to us all the same.
		f.directHandles++
		h.mode = modeDirect
		f.keptETag = ""
		if !readOnly {
			f.ptTainted = true
		}
		if slot != nil {
			slot.backingID = f.ptID
		}
		f.fsys.pt.direct.Add(1)
		return fuse.FOPEN_PASSTHROUGH | fuse.FOPEN_DIRECT_IO
	}
	f.cachedHandles++
	h.mode = modeCached
	// The kernel may keep the pages of a version it has already read: the
	// ETag names the bytes exactly. Any other version (or local changes)
	// makes it drop them.
	if f.staged == nil && f.info.ETag != "" {
		if f.keptETag == f.info.ETag {
			fuseFlags = fuse.FOPEN_KEEP_CACHE
		}
		f.keptETag = f.info.ETag
	} else {
		f.keptETag = ""
	}
	return fuseFlags
}

// flush commits staged changes (fsync of the staging file plus a journal
// record: from here they survive a crash) and queues their upload; with
// wait it also waits for the upload, which is fsync's contract and close's
// with --sync-on-close.
func (f *File) flush(ctx context.Context, wait bool) syscall.Errno {
	f.mu.Lock()
	s, unlinked, mtime, metaDirty := f.staged, f.unlinked, f.mtime, f.metaDirty
	if s != nil {
		// Our own reference: the upload's completion may drop f.staged
		// and the worker close its file while this commits it.
		s.Ref()
	}
	f.mu.Unlock()
	if s == nil {
		return 0
	}
	defer s.Close()
	if unlinked {
		return 0
	}
	// Only the metadata changed since the last commit (tar's utimes after
	// close): the bytes are durable already, so the commit needs no sync
	// of its own (cache.CommitMeta).
	metaOnly := metaDirty && s.Committed() > 0 && s.Gen() == s.Committed()
	if metaDirty {
		// The metadata change needs an upload of its own, also when the
		// data's upload has finished since saveMeta looked (or finishes
		// between a look here and the commit below, which made it look
		// clean: the change was lost). A new generation is never marked
		// clean by an upload of an older one.
		s.MarkDirty()
	}
	gen := s.Committed()
	key := f.key()
	if s.Dirty() && (s.Gen() != gen || metaDirty) {
		if mtime.IsZero() {
			mtime = f.fsys.now()
		}
		f.mu.Lock()
		f.metaDirty = false
		f.mu.Unlock()
		commit := f.fsys.cache.Commit
		if metaOnly {
			commit = f.fsys.cache.CommitMeta
		}
		g, err := commit(ctx, key, s, f.putOptions(key, mtime), f.uploaded(s))
		if err != nil {
			f.mu.Lock()
			f.metaDirty = metaDirty
			f.mu.Unlock()
			return f.fsys.errno("flush", key, err)
		}
		f.mu.Lock()
		f.mtime = mtime
		f.mu.Unlock()
		gen = g
		if s.Gen() == g {
			f.fsys.setDirty(f, false)
		}
	}
	if wait && gen > 0 {
		if err := f.fsys.cache.Wait(ctx, key, gen); err != nil {
			return f.fsys.errno("fsync", key, err)
		}
	}
	return 0
}

// uploaded is told when an upload of s completes: the file now is that
// object, and the staging file can go once no handle needs it.
func (f *File) uploaded(s *cache.Staged) func(store.ObjectInfo) {
	return func(info store.ObjectInfo) {
		f.mu.Lock()
		// f.staged is nil when the last release dropped the staging file
		// between the upload's end and this call (in write-back mode
		// nothing waits for it): the file is still this upload.
		if f.staged == s || (f.staged == nil && !f.unlinked) {
			if info.ContentType == "" {
				info.ContentType = contentType(info.Key)
			}
			f.info = info
			md := f.md
			md.mode, md.mtime = f.modeLocked(), f.mtimeLocked()
			f.md, f.metaKnown = md, true
			f.fsys.metas.remember(info, md, false)
		}
		f.mu.Unlock()
		f.noteInParent(info)
		f.dropIfClean()
	}
}

// noteInParent tells the parent directory's cached listing what the file
// now is on the server, after the mount changed it (an upload, a metadata
// copy): a lookup the listing answers within its TTL (the kernel looks a
// name up again whenever its dentry expires) must not take the file back
// to the version the listing saw, with the old size, mode and mtime, and
// the old ETag, which makes reads fail with ESTALE.
func (f *File) noteInParent(info store.ObjectInfo) {
	name, parent := f.Parent()
	if parent == nil {
		return
	}
	d, ok := parent.Operations().(*Dir)
	if !ok || f.fsys.fileKey(d.childPath(name)) != info.Key {
		return // renamed since: the rename noted it
	}
	f.mu.Lock()
	e := entry{info: f.info, md: f.md, known: f.metaKnown}
	f.mu.Unlock()
	if e.info.ETag != info.ETag {
		return // changed again since
	}
	d.note(name, &e)
}

func (f *File) putOptions(key string, mtime time.Time) store.PutOptions {
	f.mu.Lock()
	md, mode := f.md, f.modeLocked()
	f.mu.Unlock()
	return store.PutOptions{
		ContentType: contentType(key),
		Metadata:    f.fsys.headers(md, mode, mtime),
	}
}

// contentType guesses from the extension, so presigned links open in a
// browser; S3's default is binary/octet-stream.
func contentType(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// dropIfClean frees the staging file once no handle needs it and the
// server has everything, or the file was deleted.
func (f *File) dropIfClean() {
	f.mu.Lock()
	s := f.staged
	if s == nil || f.handles > 0 || ((s.Dirty() || f.metaDirty) && !f.unlinked) {
		f.mu.Unlock()
		return
	}
	f.staged = nil
	f.mu.Unlock()
	if err := s.Close(); err != nil {
		f.fsys.log.Warn().Str("op", "release").Err(err).Msg("removing staging file")
	}
}

// discard drops staged data of a file that was deleted or replaced, which
// cancels its pending upload.
func (f *File) discard() {
	f.fsys.cache.Cancel(f.key())
	f.dropLocal()
}

// dropLocal drops the staged data of a file whose name now belongs to
// another file, whose upload (if any) is now the other file's.
// Descriptors still open keep reading and writing it, as on a disk (the
// data is in no directory and never uploaded); the last release drops it.
func (f *File) dropLocal() {
	f.mu.Lock()
	s := f.staged
	f.unlinked = true
	if f.handles > 0 {
		s = nil
	} else {
		f.staged = nil
	}
	f.mu.Unlock()
	f.fsys.setDirty(f, false)
	if s != nil {
		s.Close()
	}
}

// moveTo renames the object: local changes go straight to dst, an
// unchanged object is copied on the server; then src is deleted. An
// upload pending for dst (the file this one replaces) is dropped first,
// and one in flight is waited for: it would overwrite the copy, and as a
// canceled upload it would delete what it stored, the copy.
func (f *File) moveTo(ctx context.Context, src, dst string) error {
	f.mu.Lock()
	s, info, mtime := f.staged, f.info, f.mtime
	f.mu.Unlock()
	if err := f.fsys.cache.Supersede(ctx, dst); err != nil {
		return err
	}
	if s != nil && s.Dirty() {
		// Data not on the server yet: its upload is retargeted.
		if mtime.IsZero() {
			mtime = f.fsys.now()
		}
		f.fsys.cache.Cancel(src)
		// Dirty from here until dst has it: an upload to src still in
		// flight ends by marking its generation clean, and the staging
		// file must not be dropped as clean before dst's upload.
		s.MarkDirty()
		gen, err := f.fsys.cache.Commit(ctx, dst, s, f.putOptions(dst, mtime), f.uploaded(s))
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.info.Key = dst
		f.mu.Unlock()
		if s.Gen() == gen {
			f.fsys.setDirty(f, false)
		}
	} else {
		info.Key = src
		newInfo, err := f.fsys.copyObject(ctx, info, dst, info.ETag)
		if err != nil {
			return err
		}
		if newInfo.Size == 0 {
			newInfo.Size = info.Size
		}
		newInfo.Key = dst
		f.mu.Lock()
		f.info = newInfo
		f.mu.Unlock()
	}
	return f.fsys.bucket.Delete(ctx, src)
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// Handle is one open file.
type Handle struct {
	f *File

	// mode is how the kernel uses the handle; whole, when set, is the
	// whole local copy of version wholeETag it was opened with. Set by
	// Open.
	mode      openMode
	whole     *cache.WholeFile
	wholeETag string

	mu sync.Mutex
	// reader reads the object version the handle last saw. GUARDED_BY(mu)
	reader *cache.Reader
}

// Read serves staged data when there is any, else the object.
func (h *Handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := h.f
	f.mu.Lock()
	s, info := f.staged, f.info
	f.mu.Unlock()
	var data []byte
	var err error
	f.fsys.pt.reads.Add(1)
	switch {
	case s != nil:
		var n int
		n, err = s.ReadAt(dest, off)
		data = dest[:n]
	case h.whole != nil && info.ETag == h.wholeETag:
		// Not passed through (or not available): pread of the local copy.
		f.fsys.pt.wholeReads.Add(1)
		var n int
		n, err = h.whole.ReadAt(dest, off)
		data = dest[:n]
	default:
		// Straight from the cached block when the read lies in one: the
		// copy into dest was a tenth of a sequential read's CPU.
		data, err = h.readerFor(info).ReadView(ctx, dest, off)
	}
	if err != nil && err != io.EOF {
		return nil, f.fsys.errno("read", f.key(), err)
	}
	return fuse.ReadResultData(data), 0
}

// readerFor returns a reader of the given object version, replacing one of
// an older version.
func (h *Handle) readerFor(info store.ObjectInfo) *cache.Reader {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reader != nil && h.reader.ETag() == info.ETag {
		return h.reader
	}
	if h.reader != nil {
		h.reader.Close()
	}
	h.reader = h.f.fsys.cache.NewReader(h.f.key(), info.ETag, info.Size)
	return h.reader
}

// Write stages data; it reaches the server on flush or fsync.
func (h *Handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f := h.f
	f.mu.Lock()
	s, unlinked := f.staged, f.unlinked
	f.mu.Unlock()
	if unlinked && s == nil {
		return uint32(len(data)), 0 // nothing local to keep it in: gone
	}
	if s == nil {
		var err error
		if s, err = f.stage(ctx, false); err != nil {
			return 0, f.fsys.errno("write", f.key(), err)
		}
	}
	n, err := s.WriteAt(data, off)
	f.touch()
	if err != nil {
		return uint32(n), f.fsys.errno("write", f.key(), err)
	}
	return uint32(n), 0
}

// Allocate is fallocate(2). There is no space to reserve on S3, so it
// does what changes the file: mode 0 (posix_fallocate) extends it with
// zeros to off+size; FALLOC_FL_KEEP_SIZE changes nothing and succeeds.
// Punching holes and the other modes answer EOPNOTSUPP, which programs
// take as "write the zeros yourself".
func (h *Handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	switch mode {
	case 0:
	case unix.FALLOC_FL_KEEP_SIZE:
		return 0
	default:
		return syscall.EOPNOTSUPP
	}
	f := h.f
	f.mu.Lock()
	s, unlinked := f.staged, f.unlinked
	f.mu.Unlock()
	if unlinked && s == nil {
		return 0
	}
	if s == nil {
		var err error
		if s, err = f.stage(ctx, false); err != nil {
			return f.fsys.errno("fallocate", f.key(), err)
		}
	}
	if end := int64(off + size); end > s.Size() {
		if err := s.Truncate(end); err != nil {
			return f.fsys.errno("fallocate", f.key(), err)
		}
		f.touch()
	}
	return 0
}

// Flush runs on every close(2) of a descriptor: the upload happens here
// because the kernel ignores Release's result. It may run several times
// per handle; a clean file makes it a no-op.
func (h *Handle) Flush(ctx context.Context) syscall.Errno {
	return h.f.flush(uninterrupted(ctx), h.f.fsys.opts.SyncOnClose)
}

// Fsync returns only when the data is on the server.
func (h *Handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.f.flush(uninterrupted(ctx), true)
}

// Release closes the handle; the staging file goes when nothing needs it.
func (h *Handle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	read := h.reader != nil
	if h.reader != nil {
		h.reader.Close()
		h.reader = nil
	}
	h.mu.Unlock()
	f := h.f
	f.mu.Lock()
	f.handles--
	switch h.mode {
	case modeCached:
		f.cachedHandles--
	case modeDirect:
		f.directHandles--
	case modePassthrough:
		f.ptHandles--
	}
	var tainted string
	if h.mode != modeCached && h.mode != modeUntracked && f.ptHandles == 0 && f.directHandles == 0 && f.ptID != 0 {
		f.fsys.unregisterBacking(f.ptID)
		if f.ptTainted {
			tainted = f.ptETag
		}
		f.ptID, f.ptETag, f.ptTainted = 0, "", false
	}
	info, staged := f.info, f.staged
	f.mu.Unlock()
	if tainted != "" {
		// A writer's shared mmap may have changed the local copy.
		f.fsys.cache.DropWhole(f.key(), tainted)
	}
	if h.whole != nil {
		h.whole.Close()
	}
	if read && staged == nil && info.ETag != "" {
		// Read through blocks: if they now hold the whole object, the
		// next open finds it whole.
		f.fsys.cache.Assemble(f.key(), info.ETag, info.Size)
	}
	f.dropIfClean()
	return 0
}
