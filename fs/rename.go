package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/ampfs/ampfs/fs/access"
	"github.com/ampfs/ampfs/internal/durable"
	"github.com/ampfs/ampfs/store"
)

// Renaming a directory on S3 is a copy of every key below it (its marker
// too) followed by their deletion: nothing makes it atomic. So it is
// journaled: before the first copy a record {src, dst} is written to
// Options.RenameJournal; it is removed after the last delete. A mount that
// finds a record (the previous one died mid-rename) finishes the rename
// before serving (FinishRenames): every key still below src is copied to
// dst and deleted. Copies come before deletes key by key, so at any moment
// every file is under src, dst, or both, never lost; finishing is
// idempotent. Keys a client other than this mount writes below src while
// a rename runs may be left behind or moved: as with s3fs, renaming a
// directory others write to is not safe.

// renameParallel is how many copies (then deletes) run at once.
const renameParallel = 16

type renameRecord struct {
	Src     string    `json:"src"` // key prefixes, ending in "/"
	Dst     string    `json:"dst"`
	Started time.Time `json:"started"`
}

// sameTree reports whether two paths are in the same tree of the layout
// (the same owner and rules); between trees a rename is EXDEV.
func (fsys *FS) sameTree(a, b string) bool {
	t, ok := fsys.layout.(interface{ Tree(p string) (string, bool) })
	if !ok {
		return true
	}
	ta, oka := t.Tree(a)
	tb, okb := t.Tree(b)
	return oka && okb && ta == tb
}

// renameDir renames the directory name (src, nil when not an inode) to
// newName in nd.
func (d *Dir) renameDir(ctx context.Context, src *Dir, name string, nd *Dir, newName string, flags uint32) syscall.Errno {
	fsys := d.fsys
	srcPath, dstPath := d.childPath(name), nd.childPath(newName)
	srcKey, dstKey := fsys.dirKey(srcPath), fsys.dirKey(dstPath)
	if !fsys.dirRights(srcPath).Has(access.List|access.Delete) || !fsys.dirRights(dstPath).Has(access.Write) {
		return syscall.EACCES
	}
	// The target: nothing, or an empty directory (replaced), never a file.
	if ch := nd.GetChild(newName); ch != nil {
		if f, ok := ch.Operations().(*File); ok && f.hasLocalData() {
			return syscall.ENOTDIR
		}
		if dd, ok := ch.Operations().(*Dir); ok {
			for _, gc := range dd.Children() {
				if f, ok := gc.Operations().(*File); ok && f.hasLocalData() {
					return syscall.ENOTEMPTY
				}
			}
		}
	}
	e, err := fsys.stat(ctx, dstPath)
	switch {
	case err == nil && !e.dir:
		return syscall.ENOTDIR
	case err == nil && flags&unix.RENAME_NOREPLACE != 0:
		return syscall.EEXIST
	case err == nil:
		page, err := fsys.bucket.List(ctx, store.ListInput{Prefix: dstKey, MaxKeys: 2})
		if err != nil {
			return fsys.errno("rename", dstKey, err)
		}
		for _, o := range page.Objects {
			if o.Key != dstKey {
				return syscall.ENOTEMPTY
			}
		}
		if len(page.CommonPrefixes) > 0 {
			return syscall.ENOTEMPTY
		}
	case toErrno(err) != syscall.ENOENT:
		return fsys.errno("rename", dstKey, err)
	}
	// Data below src that is committed but not uploaded goes up first:
	// the copy must see it. Files still open keep writing; their next
	// commit goes to their new key.
	for _, st := range fsys.cache.Status() {
		if strings.HasPrefix(st.Key, srcKey) {
			if err := fsys.cache.Wait(ctx, st.Key, fsys.cache.Committed(st.Key)); err != nil {
				return fsys.errno("rename", st.Key, err)
			}
		}
	}
	keys, err := fsys.listAll(ctx, srcKey)
	if err != nil {
		return fsys.errno("rename", srcKey, err)
	}
	rec := renameRecord{Src: srcKey, Dst: dstKey, Started: fsys.now()}
	if err := fsys.writeRename(rec); err != nil {
		return fsys.errno("rename", srcKey, err)
	}
	infos, err := fsys.moveKeys(ctx, rec, keys)
	if err != nil {
		// The record stays: the next mount finishes what was started.
		return fsys.errno("rename", srcKey, err)
	}
	fsys.removeRename(rec)
	if dm, ok := fsys.metas.lookupDir(srcKey); ok {
		fsys.metas.rememberDir(dstKey, dm)
	}
	fsys.metas.forgetDir(srcKey)
	if src != nil {
		// The inodes move with the rename; their objects are new copies
		// (a copy of a multipart object has a new ETag).
		src.dropListing()
		updateMoved(&src.Inode, "", infos)
	}
	d.fsys.dropAllPrefetched() // paths below both names changed
	d.note(name, nil)
	nd.note(newName, &entry{dir: true})
	return 0
}

// updateMoved gives the files below in the info of their copies, by path
// relative to the renamed directory.
func updateMoved(in *fusefs.Inode, rel string, infos map[string]store.ObjectInfo) {
	for name, ch := range in.Children() {
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		switch n := ch.Operations().(type) {
		case *Dir:
			n.dropListing()
			updateMoved(ch, p, infos)
		case *File:
			if info, ok := infos[p]; ok {
				n.mu.Lock()
				if n.staged == nil {
					if info.Size == 0 {
						info.Size = n.info.Size
					}
					info.ContentType = n.info.ContentType
					n.info = info
				}
				n.mu.Unlock()
			}
		}
	}
}

// dropListing forgets the directory's cached listing: after a rename of
// it (or of a directory above), its entries name the old keys and
// versions.
func (d *Dir) dropListing() {
	d.mu.Lock()
	d.listing = nil
	d.mu.Unlock()
}

// listAll lists every key below prefix.
func (fsys *FS) listAll(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	var out []store.ObjectInfo
	in := store.ListInput{Prefix: prefix}
	for {
		page, err := fsys.bucket.List(ctx, in)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Objects...)
		if !page.IsTruncated || page.NextContinuationToken == "" {
			return out, nil
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// moveKeys copies every key below rec.Src to rec.Dst, then deletes them;
// it returns the copies' info by path relative to the directory.
func (fsys *FS) moveKeys(ctx context.Context, rec renameRecord, keys []store.ObjectInfo) (map[string]store.ObjectInfo, error) {
	infos := make(map[string]store.ObjectInfo, len(keys))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(renameParallel)
	for _, o := range keys {
		rel := strings.TrimPrefix(o.Key, rec.Src)
		g.Go(func() error {
			var info store.ObjectInfo
			var err error
			if strings.HasSuffix(o.Key, "/") && o.Size == 0 {
				info, err = fsys.copyMarker(gctx, o.Key, rec.Dst+rel)
			} else {
				info, err = fsys.copyObject(gctx, o, rec.Dst+rel, "")
			}
			if errors.Is(err, store.ErrNotFound) {
				return nil // deleted meanwhile (or by a finished earlier attempt)
			}
			if err != nil {
				return err
			}
			info.Key = rec.Dst + rel
			// What the mount knew of a file's metadata holds for its
			// copy, so a listing of the new place shows its mode and
			// type (a symlink) without a HEAD; copyMarker remembers
			// the markers'.
			if !strings.HasSuffix(o.Key, "/") {
				if md, ok := fsys.metas.lookup(o); ok {
					fsys.metas.remember(info, md, false)
				}
			}
			mu.Lock()
			infos[strings.TrimSuffix(rel, "/")] = info
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Deletes go contents first, then the markers, deepest first: a
	// server that keeps directories as directories (versitygw's posix
	// backend) cannot remove a marker while something is below it, and
	// when a marker's delete raced with the delete of the last file below
	// it, the directory stayed behind there and the old name still
	// showed.
	var files []string
	markers := map[int][]string{} // by depth
	for _, o := range keys {
		if strings.HasSuffix(o.Key, "/") {
			n := strings.Count(o.Key, "/")
			markers[n] = append(markers[n], o.Key)
		} else {
			files = append(files, o.Key)
		}
	}
	batches := [][]string{files}
	for _, n := range slices.Backward(slices.Sorted(maps.Keys(markers))) {
		batches = append(batches, markers[n])
	}
	for _, batch := range batches {
		g, gctx = errgroup.WithContext(ctx)
		g.SetLimit(renameParallel)
		for _, key := range batch {
			g.Go(func() error {
				fsys.metas.forget(key)
				if strings.HasSuffix(key, "/") {
					fsys.metas.forgetDir(key)
				}
				return fsys.bucket.Delete(gctx, key)
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	return infos, nil
}

// copyMarker copies a directory marker (an empty "dir/" object) as a new
// empty object with the same metadata, HEAD then PUT, rather than with
// CopyObject: versitygw's posix backend keeps a marker as a directory and
// refuses to copy it (DirectoryObjectContainsData: it takes the
// directory's st_size for the body), which made every rename of a
// directory made by mkdir fail with EINVAL there. On S3 the result is the
// same object.
func (fsys *FS) copyMarker(ctx context.Context, src, dst string) (store.ObjectInfo, error) {
	head, err := fsys.bucket.Head(ctx, src)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	ct := head.ContentType
	if ct == "" {
		ct = dirContentType
	}
	info, err := fsys.bucket.Put(ctx, dst, bytes.NewReader(nil), 0, store.PutOptions{ContentType: ct, Metadata: head.Metadata})
	if err != nil {
		return store.ObjectInfo{}, err
	}
	info.Key, info.Size = dst, 0
	fsys.metas.rememberDir(dst, dirMeta{md: parseMeta(head.Metadata), marker: true, empty: true})
	return info, nil
}

// FinishRenames completes the directory renames an earlier mount started
// and did not finish (see the top of rename.go). Call it before serving.
func (fsys *FS) FinishRenames(ctx context.Context) (int, error) {
	dir := fsys.opts.RenameJournal
	if dir == "" {
		return 0, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			os.Remove(p) // a temporary file of an interrupted write
			continue
		}
		data, err := os.ReadFile(p)
		var rec renameRecord
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err != nil || rec.Src == "" || rec.Dst == "" {
			fsys.log.Warn().Str("path", p).Err(err).Msg("ignoring a damaged rename record")
			os.Remove(p)
			continue
		}
		keys, err := fsys.listAll(ctx, rec.Src)
		if err != nil {
			return n, fmt.Errorf("finishing the rename of %s to %s: %w", rec.Src, rec.Dst, err)
		}
		if _, err := fsys.moveKeys(ctx, rec, keys); err != nil {
			return n, fmt.Errorf("finishing the rename of %s to %s: %w", rec.Src, rec.Dst, err)
		}
		fsys.log.Info().Str("key", rec.Src).Str("to", rec.Dst).Int("keys", len(keys)).Msg("finished a directory rename an earlier mount left half-done")
		fsys.removeRename(rec)
		n++
	}
	return n, nil
}

func (fsys *FS) renamePath(rec renameRecord) string {
	sum := sha256.Sum256([]byte(rec.Src + "\x00" + rec.Dst))
	return filepath.Join(fsys.opts.RenameJournal, hex.EncodeToString(sum[:16])+".json")
}

// writeRename makes rec durable (temporary file, fsync, rename, fsync of
// the directory), or does nothing without a journal.
func (fsys *FS) writeRename(rec renameRecord) error {
	dir := fsys.opts.RenameJournal
	if dir == "" {
		return nil
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(fsys.renamePath(rec), data); err != nil {
		return fmt.Errorf("rename journal: %w", err)
	}
	return nil
}

func (fsys *FS) removeRename(rec renameRecord) {
	if fsys.opts.RenameJournal == "" {
		return
	}
	if err := os.Remove(fsys.renamePath(rec)); err != nil && !errors.Is(err, os.ErrNotExist) {
		fsys.log.Warn().Str("key", rec.Src).Err(err).Msg("removing a rename record")
	}
}
