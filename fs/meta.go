package fs

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/errgroup"

	"github.com/ampfs/ampfs/store"
)

// POSIX metadata is kept in user metadata exactly as s3fs keeps it, so one
// bucket can be used through both (s3fs-fuse src/s3fs.cpp, get_mode and
// friends):
//
//	x-amz-meta-mode   decimal st_mode, file type bits included (S_IFLNK for a symlink)
//	x-amz-meta-uid    decimal
//	x-amz-meta-gid    decimal
//	x-amz-meta-mtime  seconds since the epoch, optionally "sec.nsec"
//	x-amz-meta-xattr  the user.* extended attributes (node_xattr.go)
const (
	metaMode  = "mode"
	metaUID   = "uid"
	metaGID   = "gid"
	metaMtime = "mtime"
	metaXattr = "xattr"
)

// meta is what an object's user metadata says about its inode. Zero
// fields were not stored: the mount's defaults apply.
type meta struct {
	mode       uint32 // type and permission bits; 0: not stored
	uid, gid   uint32
	hasUID     bool
	hasGID     bool
	mtime      time.Time // zero: not stored (LastModified is shown)
	xattrs     map[string][]byte
	xattrsRaw  string // as stored, kept verbatim when not changed
	unknownRaw map[string]string
}

// parseMeta reads s3fs's headers; values that do not parse are ignored
// (defaults apply), never an error: the bucket is shared with other tools.
func parseMeta(m map[string]string) meta {
	var md meta
	if v, err := strconv.ParseUint(strings.TrimSpace(m[metaMode]), 10, 32); err == nil {
		md.mode = uint32(v)
	}
	if v, err := strconv.ParseUint(strings.TrimSpace(m[metaUID]), 10, 32); err == nil {
		md.uid, md.hasUID = uint32(v), true
	}
	if v, err := strconv.ParseUint(strings.TrimSpace(m[metaGID]), 10, 32); err == nil {
		md.gid, md.hasGID = uint32(v), true
	}
	md.mtime = parseMtime(m[metaMtime])
	if raw, ok := m[metaXattr]; ok {
		md.xattrsRaw = raw
		md.xattrs = decodeXattrs(raw)
	}
	// Metadata we do not interpret (other tools' keys) survives our
	// metadata-only copies.
	for k, v := range m {
		switch k {
		case metaMode, metaUID, metaGID, metaMtime, metaXattr:
		default:
			if md.unknownRaw == nil {
				md.unknownRaw = map[string]string{}
			}
			md.unknownRaw[k] = v
		}
	}
	return md
}

// parseMtime accepts "sec" and "sec.frac" (s3fs writes nanoseconds after
// the dot since 1.91).
func parseMtime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	secStr, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}
	}
	var nsec int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		frac += strings.Repeat("0", 9-len(frac))
		if nsec, err = strconv.ParseInt(frac, 10, 64); err != nil {
			nsec = 0
		}
	}
	return time.Unix(sec, nsec)
}

func formatMtime(t time.Time) string {
	if t.Nanosecond() == 0 {
		return strconv.FormatInt(t.Unix(), 10)
	}
	return strconv.FormatInt(t.Unix(), 10) + "." + strconv.FormatInt(int64(t.Nanosecond())+1e9, 10)[1:]
}

// headers returns the user metadata that stores md, defaults filled in.
func (fsys *FS) headers(md meta, mode uint32, mtime time.Time) map[string]string {
	out := make(map[string]string, 5+len(md.unknownRaw))
	for k, v := range md.unknownRaw {
		out[k] = v
	}
	uid, gid := fsys.opts.UID, fsys.opts.GID
	if md.hasUID {
		uid = md.uid
	}
	if md.hasGID {
		gid = md.gid
	}
	out[metaMode] = strconv.FormatUint(uint64(mode), 10)
	out[metaUID] = strconv.FormatUint(uint64(uid), 10)
	out[metaGID] = strconv.FormatUint(uint64(gid), 10)
	out[metaMtime] = formatMtime(mtime)
	if len(md.xattrs) > 0 {
		out[metaXattr] = encodeXattrs(md.xattrs)
	}
	return out
}

// isSymlink reports whether the stored mode says symlink.
func (md meta) isSymlink() bool { return md.mode&syscall.S_IFMT == syscall.S_IFLNK }

// metaCache remembers the metadata of objects seen by HEAD or written by
// the mount, keyed by key and ETag, so listings (which carry no metadata)
// can show persisted modes and times without a HEAD per entry.
type metaCache struct {
	mu sync.Mutex
	// lru holds files' metadata by key. GUARDED_BY(mu)
	lru *lru.Cache[string, metaEntry]
	// dirs holds directories' marker metadata by key prefix. GUARDED_BY(mu)
	dirs *lru.Cache[string, dirMeta]
}

type metaEntry struct {
	etag string
	// modified pins the version further (a metadata-only copy by another
	// client keeps the ETag but not LastModified); zero until the first
	// server answer for an object we wrote ourselves.
	modified time.Time
	md       meta
}

// metaCacheEntries bounds the cache (about 200 bytes an entry).
const metaCacheEntries = 200_000

func newMetaCache() *metaCache {
	l, _ := lru.New[string, metaEntry](metaCacheEntries)
	d, _ := lru.New[string, dirMeta](metaCacheEntries / 10)
	return &metaCache{lru: l, dirs: d}
}

// remember records md for the object version info.
func (c *metaCache) remember(info store.ObjectInfo, md meta, pinned bool) {
	if info.Key == "" || info.ETag == "" {
		return
	}
	e := metaEntry{etag: info.ETag, md: md}
	if pinned {
		e.modified = info.LastModified
	}
	c.mu.Lock()
	c.lru.Add(info.Key, e)
	c.mu.Unlock()
}

// lookup returns the metadata of the object version info, if known.
func (c *metaCache) lookup(info store.ObjectInfo) (meta, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(info.Key)
	if !ok || e.etag != info.ETag || info.ETag == "" {
		return meta{}, false
	}
	if e.modified.IsZero() && !info.LastModified.IsZero() {
		e.modified = info.LastModified
		c.lru.Add(info.Key, e)
	} else if !info.LastModified.IsZero() && !e.modified.Equal(info.LastModified) {
		return meta{}, false
	}
	return e.md, true
}

func (c *metaCache) forget(key string) {
	c.mu.Lock()
	c.lru.Remove(key)
	c.mu.Unlock()
}

// metaOf returns the metadata of the object version info: parsed when
// info carries it (a HEAD), else from the cache; known is false when
// neither can say (a listing of objects never seen).
func (fsys *FS) metaOf(info store.ObjectInfo) (md meta, known bool) {
	if info.Metadata != nil {
		md = parseMeta(info.Metadata)
		fsys.metas.remember(info, md, true)
		return md, true
	}
	return fsys.metas.lookup(info)
}

// dirMeta is what a directory's marker object says, or that it has none.
type dirMeta struct {
	md     meta
	marker bool
	// empty says the marker is known to have no body (this mount wrote
	// it, or a HEAD said so): a change of mode, owner or mtime PUTs it
	// anew, one request, where a copy onto itself preserving a body costs
	// a HEAD and a COPY (tar sets both the mode and the times of every
	// directory it extracts).
	empty bool
}

func (c *metaCache) rememberDir(key string, dm dirMeta) {
	c.mu.Lock()
	c.dirs.Add(key, dm)
	c.mu.Unlock()
}

func (c *metaCache) lookupDir(key string) (dirMeta, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirs.Get(key)
}

func (c *metaCache) forgetDir(key string) {
	c.mu.Lock()
	c.dirs.Remove(key)
	c.mu.Unlock()
}

// metaHeadBudget is the most entries of one kind (files, or directories)
// whose metadata a directory's first stat reads with HEADs
// (metaHeadParallel at a time); see meta_lazy.go. A directory with more
// entries nobody has seen shows the listing's defaults for them (mode from
// Options.FileMode, mtime = LastModified) until each is looked up on its
// own: `ls -l` of a large directory stays at its LIST pages (see doc.go,
// "Metadata without a HEAD per entry").
const (
	metaHeadBudget   = 256
	metaHeadParallel = 32
)

// fetchMeta reads the metadata of every entry in todo (entries of
// directory p) with HEADs in parallel: files into todo and the cache,
// directories (their markers) into the cache. Failures leave the
// defaults: a stat never fails because a neighbour's HEAD did.
func (fsys *FS) fetchMeta(ctx context.Context, p string, todo map[string]entry) {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(metaHeadParallel)
	type named struct {
		name string
		e    entry
	}
	list := make([]named, 0, len(todo))
	for name, e := range todo {
		list = append(list, named{name, e})
	}
	for _, ne := range list {
		name, e := ne.name, ne.e
		if e.dir {
			g.Go(func() error {
				fsys.loadDirMeta(gctx, fsys.dirKey(childOf(p, name)))
				return nil
			})
			continue
		}
		key := e.info.Key
		g.Go(func() error {
			head, err := fsys.bucket.Head(gctx, key)
			if err != nil {
				return nil
			}
			md, _ := fsys.metaOf(head)
			mu.Lock()
			if e := todo[name]; e.info.ETag == head.ETag {
				e.md, e.known = md, true
				todo[name] = e
			}
			mu.Unlock()
			return nil
		})
	}
	g.Wait()
}

func childOf(p, name string) string {
	if p == "" {
		return name
	}
	return p + "/" + name
}
