package fs

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"

	"github.com/ampfs/ampfs/fs/access"
	"github.com/ampfs/ampfs/store"
)

// Dir is a directory: a key prefix.
type Dir struct {
	node

	mu sync.Mutex
	// listing is the last readdir's result by name, answering lookups
	// until listedAt+ttl; nil when dropped. GUARDED_BY(mu)
	listing  map[string]entry
	listedAt time.Time
	// streams counts readdirs of the listing still open. GUARDED_BY(mu)
	streams int
	// listGen counts listings; unknown counts the listing's entries
	// without metadata by kind, metaTried the kinds whose metadata was
	// read for it (meta_lazy.go). GUARDED_BY(mu)
	listGen   uint64
	unknown   [2]int
	metaTried [2]bool
	// metaFetch makes the lookups that want a listing's metadata share
	// one read; relists makes those that renew an expired listing share
	// one LIST.
	metaFetch singleflight.Group
	relists   singleflight.Group
	// loading counts listings being read from the server; while one is,
	// noted keeps the mount's own changes to lay over its result (the
	// LIST may have been answered before them). GUARDED_BY(mu)
	loading int
	noted   map[string]*entry
}

// entry is what a listing or a stat says a name is.
type entry struct {
	dir  bool
	info store.ObjectInfo // files only
	// md is the file's metadata when known (a HEAD, or remembered from
	// one); a listing alone leaves known false.
	md    meta
	known bool
}

func (d *Dir) key() string { return d.fsys.dirKey(d.path()) }

func (d *Dir) childPath(name string) string {
	if p := d.path(); p != "" {
		return p + "/" + name
	}
	return name
}

// note updates the cached listing with a change made through the mount
// (e nil: name is gone), so the mount's own writes are seen at once and the
// rest of the listing keeps answering lookups (no request per new name
// while untarring, say).
func (d *Dir) note(name string, e *entry) {
	d.fsys.dropPrefetched(d.path())
	d.fsys.dropPrefetched(d.childPath(name))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loading > 0 {
		if d.noted == nil {
			d.noted = map[string]*entry{}
		}
		d.noted[name] = e
	}
	if d.listing == nil {
		return
	}
	if e == nil {
		delete(d.listing, name)
	} else {
		d.listing[name] = *e
	}
}

// cached answers a lookup from a fresh listing: the entry, whether it
// exists, and whether the listing could answer at all.
func (d *Dir) cached(name string) (e entry, ok, fresh bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listing == nil || (d.streams == 0 && d.fsys.now().Sub(d.listedAt) >= d.fsys.ttl) {
		return entry{}, false, false
	}
	e, ok = d.listing[name]
	return e, ok, true
}

func nameErrno(name string) syscall.Errno {
	if len(name) > 255 {
		return syscall.ENAMETOOLONG
	}
	if !validName(name) {
		return syscall.EINVAL
	}
	return 0
}

// Lookup finds name: a child with unsaved data first, then a fresh listing,
// then the server.
func (d *Dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	if errno := nameErrno(name); errno != 0 {
		if errno == syscall.EINVAL {
			return nil, syscall.ENOENT
		}
		return nil, errno
	}
	if ch := d.GetChild(name); ch != nil {
		if f, ok := ch.Operations().(*File); ok && f.hasLocalData() {
			f.fillAttr(&out.Attr)
			return ch, 0
		}
	}
	p := d.childPath(name)
	switch d.fsys.layout.Classify(p) {
	case Absent:
		return nil, syscall.ENOENT
	case Virtual, Mapped:
		// Directories the layout itself makes: no request needed.
		return d.child(ctx, name, entry{dir: true}, &out.Attr), 0
	}
	e, ok, fresh := d.cached(name)
	if !fresh && d.relistable() {
		// An expired listing of a small directory is read again whole:
		// one LIST answers this name and the next ones (tar and cp -r
		// look up every name they create), where a stat costs a HEAD and
		// a LIST for each.
		if _, err, _ := d.relists.Do("", func() (any, error) { return nil, d.relist(ctx) }); err == nil {
			e, ok, fresh = d.cached(name)
		}
	}
	if fresh && !ok {
		return nil, syscall.ENOENT
	}
	if fresh && d.needsMeta(name, &e) {
		// The first stat of a listed entry: read its kind's metadata.
		d.loadListingMeta(ctx, kindOf(e))
		if e2, ok2, fresh2 := d.cached(name); fresh2 && ok2 {
			e = e2
		}
	}
	if !fresh {
		var err error
		if e, err = d.fsys.stat(ctx, p); err != nil {
			return nil, d.fsys.errno("lookup", d.fsys.fileKey(p), err)
		}
	}
	return d.child(ctx, name, e, &out.Attr), 0
}

// stat finds what path p is on the server: a directory (any key below
// p/) wins over a file (the key p). HEAD and LIST go out together so a
// lookup costs one round trip.
func (fsys *FS) stat(ctx context.Context, p string) (entry, error) {
	var (
		head          store.ObjectInfo
		headErr       error
		page          store.ListPage
		fileKey, dKey = fsys.fileKey(p), fsys.dirKey(p)
	)
	// A file whose upload has not finished is what was written here.
	if e, ok := fsys.pendingEntry(fileKey); ok {
		return e, nil
	}
	// Only what the rules allow is asked: a HEAD needs get, a LIST list.
	// With neither (a put-only tree) the name is unknown.
	canGet := fsys.layout.Rights(fileKey).Has(access.Get)
	canList := fsys.layout.Rights(dKey + "\x00").Has(access.List)
	if !canGet && !canList {
		return entry{}, store.ErrNotFound
	}
	headErr = store.ErrNotFound
	g, gctx := errgroup.WithContext(ctx)
	if canGet {
		g.Go(func() error {
			head, headErr = fsys.bucket.Head(gctx, fileKey)
			return nil // ErrNotFound is an answer, not a failure
		})
	}
	if canList {
		g.Go(func() error {
			var err error
			page, err = fsys.bucket.List(gctx, store.ListInput{Prefix: dKey, MaxKeys: 1})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return entry{}, err
	}
	if len(page.Objects) > 0 || len(page.CommonPrefixes) > 0 {
		if len(page.Objects) > 0 && page.Objects[0].Key == dKey {
			// A marker: its metadata holds the directory's mode and times.
			if _, ok := fsys.metas.lookupDir(dKey); !ok {
				fsys.loadDirMeta(ctx, dKey)
			}
		}
		return entry{dir: true}, nil
	}
	if headErr != nil {
		return entry{}, headErr
	}
	md, known := fsys.metaOf(head)
	return entry{info: head, md: md, known: known}, nil
}

// pendingEntry is what the file at key is while its upload is pending:
// its staged size, and the mode and mtime it goes up with (before, a
// listing or lookup of such a file whose node the kernel had forgotten
// showed mode 0644 and a zero mtime; the differential test's seed 78).
func (fsys *FS) pendingEntry(key string) (entry, bool) {
	pu, ok := fsys.cache.PendingInfo(key)
	if !ok {
		return entry{}, false
	}
	e := entry{info: store.ObjectInfo{Key: key, Size: pu.Size, LastModified: pu.Committed, ContentType: pu.Opts.ContentType}}
	if pu.Opts.Metadata != nil {
		e.md, e.known = parseMeta(pu.Opts.Metadata), true
	}
	return e, true
}

// loadDirMeta reads a directory marker's metadata into the cache; a
// directory without a marker shows the defaults.
func (fsys *FS) loadDirMeta(ctx context.Context, dKey string) (dirMeta, error) {
	if dKey == "" {
		return dirMeta{}, nil // the bucket root has no marker
	}
	head, err := fsys.bucket.Head(ctx, dKey)
	switch {
	case err == nil:
		dm := dirMeta{md: parseMeta(head.Metadata), marker: true, empty: head.Size == 0}
		fsys.metas.rememberDir(dKey, dm)
		return dm, nil
	case toErrno(err) == syscall.ENOENT:
		fsys.metas.rememberDir(dKey, dirMeta{})
		return dirMeta{}, nil
	}
	return dirMeta{}, err
}

// child returns the inode for name, reusing the existing one when its type
// still matches so open files keep their state.
func (d *Dir) child(ctx context.Context, name string, e entry, out *fuse.Attr) *fusefs.Inode {
	if !e.dir && !e.known {
		e.md, e.known = d.fsys.metaOf(e.info)
	}
	if ch := d.GetChild(name); ch != nil {
		switch n := ch.Operations().(type) {
		case *File:
			// A symlink replaced by a file (or the other way) is a new
			// inode: the kernel keeps the type of an inode forever.
			if !e.dir && (!e.known || n.isSymlink() == e.md.isSymlink()) {
				n.update(e.info, e.md, e.known)
				n.fillAttr(out)
				return ch
			}
		case *Dir:
			if e.dir {
				n.fillAttr(out)
				return ch
			}
		}
	}
	if e.dir {
		nd := &Dir{node: node{fsys: d.fsys}}
		d.fsys.dirAttr(d.childPath(name), out)
		return d.NewInode(ctx, nd, fusefs.StableAttr{Mode: syscall.S_IFDIR})
	}
	key := d.fsys.fileKey(d.childPath(name))
	f := &File{node: node{fsys: d.fsys}, info: e.info, lastKey: key, md: e.md, metaKnown: e.known}
	if s, ok := d.fsys.cache.Pending(key); ok {
		// Committed data still uploading (also from before a restart).
		f.staged = s
	}
	f.fillAttr(out)
	mode := uint32(syscall.S_IFREG)
	if e.md.isSymlink() {
		mode = syscall.S_IFLNK
	}
	return d.NewInode(ctx, f, fusefs.StableAttr{Mode: mode})
}

func (d *Dir) fillAttr(out *fuse.Attr) { d.fsys.dirAttr(d.path(), out) }

// dirAttr fills the attributes of the directory at p: what its marker
// stores, else the defaults; the rules cap the mode.
func (fsys *FS) dirAttr(p string, out *fuse.Attr) {
	perm, mtime := fsys.opts.DirMode, fsys.start
	var dm dirMeta
	if fsys.layout.Classify(p) == Real {
		dm, _ = fsys.metas.lookupDir(fsys.dirKey(p))
	}
	if dm.md.mode != 0 {
		perm = dm.md.mode & 0o7777
	}
	if !dm.md.mtime.IsZero() {
		mtime = dm.md.mtime
	}
	perm = perm&^0o777 | perm&0o777&permBits(fsys.dirRights(p), true)
	fsys.fillAttr(out, syscall.S_IFDIR|perm, 4096, mtime)
	if dm.md.hasUID {
		out.Uid = dm.md.uid
	}
	if dm.md.hasGID {
		out.Gid = dm.md.gid
	}
}

// may returns EACCES unless the user may do want with key: the rules are
// checked before any request is sent.
func (fsys *FS) may(key string, want access.Rights) syscall.Errno {
	if key == "" || !fsys.layout.Rights(key).Has(want) {
		return syscall.EACCES
	}
	return 0
}

// real returns EACCES unless p is a path backed by keys (not the layout's
// own directories).
func (fsys *FS) real(p string) syscall.Errno {
	if fsys.layout.Classify(p) != Real {
		return syscall.EACCES
	}
	return 0
}

// Getattr reports the directory's attributes.
func (d *Dir) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fillAttr(&out.Attr)
	return 0
}

// Setattr stores mode, owner and mtime in the directory's marker object
// (s3fs's place for them), writing a marker when the directory had none.
// The layout's own directories accept them without storing anything.
func (d *Dir) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	p := d.path()
	if !d.fsys.dirRights(p).Has(access.Write) {
		return syscall.EACCES
	}
	mode, setMode := in.GetMode()
	uid, setUID := in.GetUID()
	gid, setGID := in.GetGID()
	mtime, setMtime := in.GetMTime()
	if d.fsys.layout.Classify(p) == Real && (setMode || setUID || setGID || setMtime) {
		key := d.key()
		dm, ok := d.fsys.metas.lookupDir(key)
		if !ok {
			var err error
			if dm, err = d.fsys.loadDirMeta(ctx, key); err != nil {
				return d.fsys.errno("setattr", key, err)
			}
		}
		md := dm.md
		if setMode {
			md.mode = syscall.S_IFDIR | mode&0o7777
		}
		if setUID {
			md.uid, md.hasUID = uid, true
		}
		if setGID {
			md.gid, md.hasGID = gid, true
		}
		if setMtime {
			md.mtime = mtime
		}
		if md.mode == 0 {
			md.mode = syscall.S_IFDIR | d.fsys.opts.DirMode
		}
		if md.mtime.IsZero() {
			md.mtime = d.fsys.start
		}
		hdr := d.fsys.headers(md, md.mode, md.mtime)
		var err error
		if dm.marker && !dm.empty {
			_, err = d.fsys.bucket.Copy(ctx, key, key, store.CopyOptions{ReplaceMetadata: true, ContentType: dirContentType, Metadata: hdr})
		}
		put := !dm.marker || dm.empty || toErrno(err) == syscall.ENOENT
		if put {
			_, err = d.fsys.bucket.Put(ctx, key, bytes.NewReader(nil), 0, store.PutOptions{ContentType: dirContentType, Metadata: hdr})
		}
		if err != nil {
			return d.fsys.errno("setattr", key, err)
		}
		d.fsys.metas.rememberDir(key, dirMeta{md: md, marker: true, empty: put || dm.empty})
	}
	d.fillAttr(&out.Attr)
	return 0
}

// dirContentType is what s3fs gives directory markers.
const dirContentType = "application/x-directory"

// listDir reads the directory at key prefix from the server, all pages.
func (fsys *FS) listDir(ctx context.Context, prefix string) (map[string]entry, error) {
	entries := map[string]entry{}
	in := store.ListInput{Prefix: prefix, Delimiter: "/"}
	for {
		page, err := fsys.bucket.List(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			name := strings.TrimPrefix(o.Key, prefix)
			if o.Key == prefix || !validName(name) {
				continue // the directory's own marker, or not a name
			}
			if _, isDir := entries[name]; !isDir {
				entries[name] = entry{info: o}
			}
		}
		for _, cp := range page.CommonPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(cp, prefix), "/")
			if validName(name) {
				entries[name] = entry{dir: true} // a directory hides a file of the same name
			}
		}
		if !page.IsTruncated || page.NextContinuationToken == "" {
			break
		}
		in.ContinuationToken = page.NextContinuationToken
	}
	return entries, nil
}

// relistMaxEntries is the largest expired listing a lookup reads again
// whole (one LIST page); a larger directory's lookups stat the name.
const relistMaxEntries = 1000

// relistable reports whether a lookup in d may renew d's expired listing
// with one LIST: d was listed (or made by this mount) and is small.
func (d *Dir) relistable() bool {
	p := d.path()
	if d.fsys.layout.Classify(p) == Virtual || !d.fsys.dirRights(p).Has(access.List) {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.listing != nil && len(d.listing) <= relistMaxEntries
}

// relist reads d's listing from the server again for a lookup: fresh
// for the TTL from now.
func (d *Dir) relist(ctx context.Context) error {
	entries, err := d.load(ctx, false)
	if err != nil {
		return err
	}
	d.setListing(entries, false)
	return nil
}

// load reads d's entries: the server's listing (or a prefetched one), the
// layout's own directories, the files not on the server yet, and the
// changes the mount made while the LIST ran. walk says a reader is
// walking the tree (readdir), so the listings of d's siblings are
// fetched ahead.
func (d *Dir) load(ctx context.Context, walk bool) (map[string]entry, error) {
	p := d.path()
	d.mu.Lock()
	d.loading++
	d.mu.Unlock()
	noted := func() map[string]*entry {
		d.mu.Lock()
		defer d.mu.Unlock()
		n := d.noted
		if d.loading--; d.loading == 0 {
			d.noted = nil
		}
		return n
	}
	// What is not on the server yet is taken before the listing as well
	// as after it: a file whose upload finishes while the LIST runs would
	// otherwise be in neither (posixtest's ReadDirBasic in write-back
	// mode: a file written and closed went missing from the next readdir).
	unsent := d.unsentNames()
	var entries map[string]entry
	if d.fsys.layout.Classify(p) == Virtual {
		entries = map[string]entry{}
	} else {
		if !d.fsys.dirRights(p).Has(access.List) {
			noted()
			return nil, syscall.EACCES
		}
		var ok bool
		if entries, ok = d.fsys.takePrefetched(ctx, p); !ok {
			var err error
			if entries, err = d.fsys.listDir(ctx, d.key()); err != nil {
				noted()
				return nil, err
			}
		}
		if walk {
			d.walkStep()
		}
	}
	// The layout's own directories: the top level, the user's own id.
	for _, name := range d.fsys.layout.Children(p) {
		entries[name] = entry{dir: true}
	}
	// Files whose upload has not finished (also from before a restart),
	// and files created here and not committed yet, are listed too, and
	// known to the lookups the listing answers.
	for _, names := range [][]string{unsent, d.unsentNames()} {
		for _, name := range names {
			// A pending upload is what the name will be on the server (its
			// size, mode and mtime), also over an older listed version;
			// a file not committed yet is answered by its node.
			if e, ok := d.fsys.pendingEntry(d.fsys.fileKey(d.childPath(name))); ok {
				entries[name] = e
			} else if _, listed := entries[name]; !listed {
				entries[name] = entry{}
			}
		}
	}
	// A mkdir, create, unlink or rename here while the LIST ran may be
	// missing from its answer (or it from the unsent names): the mount's
	// own changes are newer than what the server said.
	for name, e := range noted() {
		if e == nil {
			delete(entries, name)
		} else {
			entries[name] = *e
		}
	}
	return entries, nil
}

// Readdir lists the directory and keeps the listing to answer lookups.
func (d *Dir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	ctx = uninterrupted(ctx)
	entries, err := d.load(ctx, true)
	if errno, ok := err.(syscall.Errno); ok {
		return nil, errno
	}
	if err != nil {
		return nil, d.fsys.errno("readdir", d.key(), err)
	}
	// The listing answers lookups while the directory is being read (ls
	// -l looks up every entry it gets) and for the TTL after that. From
	// here on it is only touched under d.mu.
	d.setListing(entries, true)
	d.mu.Lock() // entries is the listing now: note changes it under d.mu
	list := make([]fuse.DirEntry, 0, len(entries)+2)
	list = append(list, fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR}, fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR})
	for name, e := range entries {
		mode := uint32(syscall.S_IFREG)
		switch {
		case e.dir:
			mode = syscall.S_IFDIR
		case e.md.isSymlink():
			mode = syscall.S_IFLNK
		}
		list = append(list, fuse.DirEntry{Name: name, Mode: mode})
	}
	d.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return &dirStream{DirStream: fusefs.NewListDirStream(list), d: d}, 0
}

// unsentNames returns the names in this directory of files whose data
// the server does not have yet: pending uploads, and files with local
// changes not committed.
func (d *Dir) unsentNames() []string {
	var names []string
	if d.fsys.layout.Classify(d.path()) != Virtual {
		for _, name := range d.fsys.cache.PendingNames(d.key()) {
			if validName(name) {
				names = append(names, name)
			}
		}
	}
	for name, ch := range d.Children() {
		if f, ok := ch.Operations().(*File); ok && f.hasLocalData() {
			names = append(names, name)
		}
	}
	return names
}

// dirStream starts the listing's TTL when the reader closes the directory.
type dirStream struct {
	fusefs.DirStream
	d *Dir
}

// Seekdir passes rewinddir and seekdir on to the list.
func (s *dirStream) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if sd, ok := s.DirStream.(fusefs.FileSeekdirer); ok {
		return sd.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (s *dirStream) Close() {
	s.DirStream.Close()
	s.d.mu.Lock()
	s.d.streams--
	s.d.listedAt = s.d.fsys.now()
	s.d.mu.Unlock()
}

// Mkdir writes a "dir/" marker so the empty directory persists.
func (d *Dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	if errno := nameErrno(name); errno != 0 {
		return nil, errno
	}
	p := d.childPath(name)
	if errno := d.fsys.real(p); errno != 0 {
		return nil, errno
	}
	key := d.fsys.dirKey(p)
	if errno := d.fsys.may(key, access.Write); errno != 0 {
		return nil, errno
	}
	md := meta{mode: syscall.S_IFDIR | mode&0o7777, mtime: d.fsys.now()}
	opts := store.PutOptions{ContentType: dirContentType, Metadata: d.fsys.headers(md, md.mode, md.mtime)}
	if _, err := d.fsys.bucket.Put(ctx, key, bytes.NewReader(nil), 0, opts); err != nil {
		return nil, d.fsys.errno("mkdir", key, err)
	}
	d.fsys.metas.rememberDir(key, dirMeta{md: md, marker: true, empty: true})
	d.note(name, &entry{dir: true})
	ch := d.child(ctx, name, entry{dir: true}, &out.Attr)
	if nd, ok := ch.Operations().(*Dir); ok {
		nd.createdEmpty()
	}
	return ch, 0
}

// Rmdir removes an empty directory's marker; ENOTEMPTY when any key, or
// any file not yet uploaded, is below it.
func (d *Dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	ctx = uninterrupted(ctx)
	if ch := d.GetChild(name); ch != nil {
		for _, gc := range ch.Children() {
			if f, ok := gc.Operations().(*File); ok && f.hasLocalData() {
				return syscall.ENOTEMPTY
			}
		}
	}
	p := d.childPath(name)
	if errno := d.fsys.real(p); errno != 0 {
		return errno
	}
	key := d.fsys.dirKey(p)
	if errno := d.fsys.may(key, access.Delete|access.List); errno != 0 {
		return errno
	}
	page, err := d.fsys.bucket.List(ctx, store.ListInput{Prefix: key, MaxKeys: 2})
	if err != nil {
		return d.fsys.errno("rmdir", key, err)
	}
	for _, o := range page.Objects {
		if o.Key != key {
			return syscall.ENOTEMPTY
		}
	}
	if len(page.CommonPrefixes) > 0 {
		return syscall.ENOTEMPTY
	}
	if err := d.fsys.bucket.Delete(ctx, key); err != nil {
		return d.fsys.errno("rmdir", key, err)
	}
	d.fsys.metas.forgetDir(key)
	d.note(name, nil)
	return 0
}

// Unlink deletes a file's object and cancels whatever it had staged.
func (d *Dir) Unlink(ctx context.Context, name string) syscall.Errno {
	ctx = uninterrupted(ctx)
	p := d.childPath(name)
	if errno := d.fsys.real(p); errno != 0 {
		return errno
	}
	key := d.fsys.fileKey(p)
	if errno := d.fsys.may(key, access.Delete); errno != 0 {
		return errno
	}
	if ch := d.GetChild(name); ch != nil {
		if f, ok := ch.Operations().(*File); ok {
			f.discard()
		}
	}
	d.fsys.cache.Cancel(key) // also a pending upload no node holds
	if err := d.fsys.bucket.Delete(ctx, key); err != nil {
		return d.fsys.errno("unlink", key, err)
	}
	d.fsys.metas.forget(key)
	d.note(name, nil)
	return 0
}

// Create makes a new, empty, dirty file; it reaches the server on flush.
func (d *Dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if errno := nameErrno(name); errno != 0 {
		return nil, nil, 0, errno
	}
	p := d.childPath(name)
	if errno := d.fsys.real(p); errno != 0 {
		return nil, nil, 0, errno
	}
	key := d.fsys.fileKey(p)
	if errno := d.fsys.may(key, access.Write); errno != 0 {
		return nil, nil, 0, errno
	}
	s, err := d.fsys.cache.NewStaged()
	if err != nil {
		return nil, nil, 0, d.fsys.errno("create", key, err)
	}
	now := d.fsys.now()
	f := &File{node: node{fsys: d.fsys}, staged: s, mtime: now, handles: 1, lastKey: key,
		info: store.ObjectInfo{Key: key, LastModified: now},
		md:   meta{mode: syscall.S_IFREG | mode&0o7777}, metaKnown: true}
	d.fsys.setDirty(f, true)
	// A new file is usually written front to back: its parts go up while
	// it is written (cache/stream.go).
	d.fsys.cache.Stream(s, key, f.putOptions(key, now))
	if old := d.GetChild(name); old != nil {
		if of, ok := old.Operations().(*File); ok {
			of.discard()
		}
	}
	ch := d.NewInode(ctx, f, fusefs.StableAttr{Mode: syscall.S_IFREG})
	f.fillAttr(&out.Attr)
	d.note(name, &entry{info: store.ObjectInfo{Key: key, LastModified: now}, md: f.md, known: true})
	return ch, &Handle{f: f}, 0, 0
}

// Rename moves a file (server-side copy, then delete) or a directory
// (every key below it, journaled: rename.go). Between trees of the
// layout with different owners it answers EXDEV, so mv(1) copies and
// each side's rules apply to what it writes.
func (d *Dir) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	ctx = uninterrupted(ctx)
	if flags&fusefs.RENAME_EXCHANGE != 0 {
		return syscall.EINVAL
	}
	if errno := nameErrno(newName); errno != 0 {
		return errno
	}
	nd, ok := newParent.(*Dir)
	if !ok {
		return syscall.EXDEV
	}
	srcPath, dstPath := d.childPath(name), nd.childPath(newName)
	if errno := d.fsys.real(srcPath); errno != 0 {
		return errno
	}
	if errno := d.fsys.real(dstPath); errno != 0 {
		return errno
	}
	srcKey, dstKey := d.fsys.fileKey(srcPath), d.fsys.fileKey(dstPath)
	if errno := d.fsys.may(srcKey, access.Delete); errno != 0 {
		return errno
	}
	if errno := d.fsys.may(dstKey, access.Write); errno != 0 {
		return errno
	}
	if !d.fsys.sameTree(srcPath, dstPath) {
		return syscall.EXDEV
	}
	var f *File
	var srcDir *Dir
	if ch := d.GetChild(name); ch != nil {
		switch n := ch.Operations().(type) {
		case *Dir:
			srcDir = n
		case *File:
			f = n
		}
	}
	if f == nil && srcDir == nil {
		e, err := d.fsys.stat(ctx, srcPath)
		if err != nil {
			return d.fsys.errno("rename", srcKey, err)
		}
		if e.dir {
			return d.renameDir(ctx, nil, name, nd, newName, flags)
		}
		f = &File{node: node{fsys: d.fsys}, info: e.info, md: e.md, metaKnown: e.known}
	}
	if srcDir != nil {
		return d.renameDir(ctx, srcDir, name, nd, newName, flags)
	}
	var dst *File
	if ch := nd.GetChild(newName); ch != nil {
		switch n := ch.Operations().(type) {
		case *Dir:
			return syscall.EISDIR
		case *File:
			dst = n
		}
	}
	if dst == nil || !dst.hasLocalData() {
		// What the server has there: a directory cannot be replaced by a
		// file, and RENAME_NOREPLACE refuses any name that exists.
		e, err := d.fsys.stat(ctx, dstPath)
		switch {
		case err == nil && e.dir:
			return syscall.EISDIR
		case err == nil && flags&unix.RENAME_NOREPLACE != 0:
			return syscall.EEXIST
		case err != nil && toErrno(err) != syscall.ENOENT:
			return d.fsys.errno("rename", dstKey, err)
		}
	} else if flags&unix.RENAME_NOREPLACE != 0 {
		return syscall.EEXIST
	}
	if err := f.moveTo(ctx, srcKey, dstKey); err != nil {
		return d.fsys.errno("rename", srcKey, err)
	}
	if dst != nil && dst != f {
		// Not discard: it would cancel the upload moveTo just queued
		// for dst, the editor's save (write a temporary file, rename it
		// over the original) in write-back mode.
		dst.dropLocal()
	}
	d.fsys.metas.forget(srcKey)
	d.note(name, nil)
	f.mu.Lock()
	e := entry{info: f.info, md: f.md, known: f.metaKnown}
	clean := f.staged == nil || !f.staged.Dirty()
	f.mu.Unlock()
	e.info.Key = dstKey
	if clean && e.known && e.info.ETag != "" {
		// The copy has the object's metadata: a later listing of the
		// new name shows it (a symlink's type in getdents) without a
		// HEAD. (Data still to upload is remembered by its upload.)
		d.fsys.metas.remember(e.info, e.md, false)
	}
	nd.note(newName, &e)
	return 0
}

// Statfs reports a large, mostly free disk: S3 has no capacity to show.
func (d *Dir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfs(out)
	return 0
}

// Fsync of a directory succeeds at once: every change to a directory
// (mkdir, rmdir, unlink, rename, and a new file's close) is already on the
// server when its call returns.
func (d *Dir) Fsync(ctx context.Context, fh fusefs.FileHandle, flags uint32) syscall.Errno {
	return 0
}

// createdEmpty gives a directory this mount just made an empty listing:
// for the TTL, the names created in it (tar, cp -r) are known to be new
// without a HEAD and a LIST each; the mount's own changes keep the listing
// up to date (note).
func (d *Dir) createdEmpty() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listing == nil {
		d.listing = map[string]entry{}
		d.listedAt = d.fsys.now()
	}
}
