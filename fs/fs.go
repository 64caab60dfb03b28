package fs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/ampfs/ampfs/cache"
	"github.com/ampfs/ampfs/fs/access"
	"github.com/ampfs/ampfs/store"
)

// Options configure a file system. Each field documents its zero-value
// default.
type Options struct {
	// Bucket is the object store. Required.
	Bucket store.Bucket
	// Cache holds staged writes and serves reads. Required.
	Cache *cache.Cache
	// Layout maps mount paths to keys and rights. Zero: RawLayout(Prefix).
	Layout Layout
	// Prefix is the key prefix shown as the root when Layout is nil; "" is
	// the whole bucket.
	Prefix string
	// UID and GID own every file. Zero: root.
	UID, GID uint32
	// FileMode and DirMode are the permission bits shown. Zero: 0644, 0755.
	FileMode, DirMode uint32
	// MetadataTTL is how long the kernel may cache entries and attributes,
	// and how long a directory listing answers lookups. Zero: 1 s.
	MetadataTTL time.Duration
	// FsName is the source shown in /proc/mounts. Zero: "ampfs:"+bucket.
	FsName string
	// AllowOther lets other local users in (with default_permissions).
	AllowOther bool
	// DebugFUSE logs every FUSE request at debug level.
	DebugFUSE bool
	// SyncOnClose makes close(2) wait for the upload (as fsync does)
	// instead of returning once the data is committed locally.
	SyncOnClose bool
	// Logger receives all log lines. Zero value: no logging.
	Logger zerolog.Logger
	// OnErrno, when set, is told of every operation that fails, with the
	// errno's name ("EIO"); lookups that find nothing are not counted.
	OnErrno func(op, errno string)
	// Presign, when set, makes a presigned GET URL for a key; it serves the
	// user.ampfs.url xattr. Nil: that xattr is absent.
	Presign func(ctx context.Context, key string, expires time.Duration) (string, error)
	// RenameJournal is a directory for the records of directory renames
	// in progress (rename.go), finished by FinishRenames at the next
	// mount. Zero: not journaled; an interrupted rename stays half-done.
	RenameJournal string
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
	// MaxCopySize is the largest object a rename copies with one
	// CopyObject; larger ones are copied in parts (UploadPartCopy, copy.go).
	// Zero: store.MaxPutSize, S3's limit.
	MaxCopySize int64
	// NoPassthrough turns FUSE passthrough off: whole local files are
	// then read through ampfs (passthrough.go). Zero: passthrough where
	// the kernel allows it.
	NoPassthrough bool
}

// FS is one mounted file system.
type FS struct {
	opts   Options
	bucket store.Bucket
	cache  *cache.Cache
	log    zerolog.Logger
	now    func() time.Time
	layout Layout
	ttl    time.Duration
	start  time.Time

	// metas remembers objects' metadata (meta.go); it has its own lock.
	metas *metaCache
	// prefetch holds listings fetched ahead for walkers (prefetch.go); it
	// has its own lock.
	prefetch *prefetcher
	slurps   slurper // subtrees listed flat (slurp.go)
	// pt is passthrough's state (passthrough.go); atomics.
	pt passthrough
	// opening maps an OPEN request's cancel channel to its openSlot while
	// rawFS.Open runs.
	opening sync.Map

	mu sync.Mutex
	// dirty holds files with staged data not yet on the server, so a
	// shutdown can flush them. GUARDED_BY(mu)
	dirty map[*File]struct{}
}

// New checks opts and returns the file system, ready to mount.
func New(opts Options) (*FS, error) {
	if opts.Bucket == nil || opts.Cache == nil {
		return nil, errors.New("fs: Options.Bucket and Options.Cache are required")
	}
	if opts.FileMode == 0 {
		opts.FileMode = 0o644
	}
	if opts.DirMode == 0 {
		opts.DirMode = 0o755
	}
	if opts.MetadataTTL <= 0 {
		opts.MetadataTTL = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FsName == "" {
		opts.FsName = "ampfs:" + opts.Bucket.Name()
	}
	if opts.Layout == nil {
		opts.Layout = RawLayout(opts.Prefix)
	}
	if opts.MaxCopySize <= 0 {
		opts.MaxCopySize = store.MaxPutSize
	}
	fsys := &FS{
		opts:     opts,
		bucket:   opts.Bucket,
		cache:    opts.Cache,
		log:      opts.Logger,
		now:      opts.Now,
		layout:   opts.Layout,
		ttl:      opts.MetadataTTL,
		start:    opts.Now(),
		dirty:    map[*File]struct{}{},
		metas:    newMetaCache(),
		prefetch: newPrefetcher(),
	}
	if opts.NoPassthrough {
		fsys.pt.disabled.Store(true)
	}
	return fsys, nil
}

// Mount mounts the file system at mountpoint and returns the running server;
// the caller waits on it (server.Wait) and unmounts it.
func (fsys *FS) Mount(mountpoint string) (*fuse.Server, error) {
	root := &Dir{node: node{fsys: fsys}}
	ttl := fsys.ttl
	// Negative entries are not cached by the kernel: a file created through
	// S3 directly should appear as soon as our own listing TTL allows.
	var negative time.Duration
	opts := &fusefs.Options{
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &negative,
		UID:             fsys.opts.UID,
		GID:             fsys.opts.GID,
		// A mode without permission bits (chmod 000) is shown as it is;
		// go-fuse would otherwise show 0644 (0755 for a directory).
		NullPermissions: true,
		Logger:          log.New(fsys.log.With().Str("component", "go-fuse").Logger().Level(zerolog.WarnLevel), "", 0),
		MountOptions: fuse.MountOptions{
			FsName: fsys.opts.FsName,
			Name:   "ampfs",
			// 1 MiB writes: fewer round trips into this process per byte
			// written (the kernel's default is 128 KiB).
			MaxWrite: 1 << 20,
			// Larger kernel readahead lets sequential reads arrive in big
			// requests that the streaming reader serves in one go.
			MaxReadAhead: 1 << 20,
			// More requests in flight at once let the kernel's async
			// readahead overlap with our block fetches (default 12).
			MaxBackground: 64,
			// As root, mount(2) directly; otherwise go-fuse falls back to
			// fusermount3, so fuse3 is only needed for non-root users.
			DirectMount: os.Geteuid() == 0,
			AllowOther:  fsys.opts.AllowOther,
			// The kernel checks modes against the caller, so with
			// allow_other one user's credentials never serve another
			// user's request that the shown modes deny.
			Options: defaultPermissions(fsys.opts.AllowOther),
			Debug:   fsys.opts.DebugFUSE,
			Logger:  log.New(fsys.log.With().Str("component", "fuse").Logger().Level(zerolog.DebugLevel), "", 0),
		},
	}
	// fusefs.Mount, with Open wrapped for passthrough (passthrough.go).
	raw := &rawFS{RawFileSystem: fusefs.NewNodeFS(root, opts), fsys: fsys}
	server, err := fuse.NewServer(raw, mountpoint, &opts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	fsys.pt.server.Store(server)
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	fsys.raiseKernelReadahead(mountpoint, opts.MaxReadAhead)
	return server, nil
}

// raiseKernelReadahead sets the mount's read_ahead_kb to the readahead the
// FUSE connection allows: the kernel's default for FUSE is 128 KiB, so a
// sequential reader otherwise sends twice the read requests it needs
// (measured here: 16 requests per MiB instead of 2). Only root may write
// it; without, reads still work, in smaller requests.
func (fsys *FS) raiseKernelReadahead(mountpoint string, bytes int) {
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(path, []byte(strconv.Itoa(bytes/1024)), 0o644); err != nil {
		fsys.log.Debug().Err(err).Str("path", path).Msg("kernel readahead left at its default")
	}
}

func defaultPermissions(allowOther bool) []string {
	if allowOther {
		return []string{"default_permissions"}
	}
	return nil
}

// FlushAll commits every file with staged changes not yet committed (files
// still open); unmount and SIGTERM call it, then drain the upload queue. It
// returns the first error but tries every file.
func (fsys *FS) FlushAll(ctx context.Context) error {
	fsys.mu.Lock()
	files := make([]*File, 0, len(fsys.dirty))
	for f := range fsys.dirty {
		files = append(files, f)
	}
	fsys.mu.Unlock()
	var first error
	for _, f := range files {
		if errno := f.flush(ctx, false); errno != 0 && first == nil {
			first = fmt.Errorf("flush %s: %w", f.key(), errno)
		}
	}
	return first
}

// Dirty returns how many files have changes not yet on the server.
func (fsys *FS) Dirty() int {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return len(fsys.dirty)
}

func (fsys *FS) setDirty(f *File, dirty bool) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if dirty {
		fsys.dirty[f] = struct{}{}
	} else {
		delete(fsys.dirty, f)
	}
}

// node is what every inode of ours embeds.
type node struct {
	fusefs.Inode
	fsys *FS
}

// path returns the node's path below the mount root, "" for the root.
func (n *node) path() string {
	return n.Path(n.Root())
}

// validName reports whether a key segment can be shown as a file name.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= 255 && !strings.ContainsRune(name, 0)
}

// dirKey is the key prefix listed for the directory at path p.
func (fsys *FS) dirKey(p string) string { return fsys.layout.DirKey(p) }

// fileKey is the key of the file at path p.
func (fsys *FS) fileKey(p string) string { return fsys.layout.Key(p) }

// dirRights is what the user may do inside the directory at p: the rights
// on a key directly below it.
func (fsys *FS) dirRights(p string) access.Rights {
	if fsys.layout.Classify(p) == Virtual {
		return access.Get | access.List
	}
	return fsys.layout.Rights(fsys.dirKey(p) + "\x00")
}

// permBits turns rights into the permission bits shown (masked by the
// configured modes), so ls -l tells what the rules allow: 0555/0444 for a
// tree the user may only read.
func permBits(r access.Rights, dir bool) uint32 {
	var perm uint32
	if r.Has(access.Get) || (dir && r.Has(access.List)) {
		perm |= 4
	}
	if r.Has(access.Write) || (dir && r.Has(access.Delete)) {
		perm |= 2
	}
	if dir && r != access.None {
		perm |= 1
	}
	return perm * 0o111
}

func (fsys *FS) fillAttr(out *fuse.Attr, mode uint32, size int64, mtime time.Time) {
	out.Mode = mode
	out.Size = uint64(size)
	out.Blocks = (uint64(size) + 511) / 512
	out.Blksize = 1 << 20
	out.Nlink = 1
	out.Owner = fuse.Owner{Uid: fsys.opts.UID, Gid: fsys.opts.GID}
	out.SetTimes(&mtime, &mtime, &mtime)
}

// statfs returns numbers that make df sensible for storage without a
// capacity: a large, mostly free disk.
func statfs(out *fuse.StatfsOut) {
	const bsize = 4096
	const blocks = 1 << 40 // 4 PiB
	out.Bsize = bsize
	out.Frsize = bsize
	out.Blocks = blocks
	out.Bfree = blocks
	out.Bavail = blocks
	out.Files = 1 << 32
	out.Ffree = 1 << 32
	out.NameLen = 255
}

// KeyOf returns the object key of the file at rel, a path relative to the
// mount root ("public/a.txt"), and whether the user may read it; for the
// control socket (ampfs url).
func (fsys *FS) KeyOf(rel string) (key string, readable bool) {
	rel = strings.Trim(rel, "/")
	if fsys.layout.Classify(rel) != Real {
		return "", false
	}
	key = fsys.fileKey(rel)
	return key, fsys.layout.Rights(key).Has(access.Get)
}

// Uploads lists the uploads not finished yet (ampfs status).
func (fsys *FS) Uploads() []cache.UploadStatus { return fsys.cache.Status() }
