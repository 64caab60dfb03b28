package fs

import (
	"context"
	"time"
)

// Metadata on first stat.
//
// A listing names every entry and says which are directories, but not the
// user metadata (mode, owner, mtime, "is a symlink") s3fs keeps in object
// headers. Reading it costs a HEAD an entry, so it is read only when a
// stat needs it:
//
//   - readdir sends no HEAD. Entries whose metadata this mount knows (it
//     wrote them, or read them before) get their attributes in the
//     READDIRPLUS reply; the others go out without attributes (a zero node
//     id, which the kernel takes as "look this name up when you need it"),
//     so their type in getdents is the listing's: regular file or
//     directory.
//   - The first LOOKUP of such an entry is the sign that its neighbours
//     will be stat'ed too (ls -l, cp -a, rsync, tar): it reads the metadata
//     of every unknown entry of the same kind (files, or directories) of
//     the listing at once, metaHeadParallel HEADs at a time, and all those
//     lookups are then answered from the listing.
//   - find, du -s and other walkers that only need names and d_type stat
//     directories, not files: they cost one HEAD per directory marker and
//     none per file.
//   - Beyond metaHeadBudget unknown entries of a kind, nothing is read: the
//     READDIRPLUS reply carries the defaults and `ls -l` of a large
//     directory stays at its LIST pages.
//
// The price: a symlink another client wrote shows as a regular file in
// getdents (find -type l, ls --color without -l) until something stats
// it in this mount; stat, readlink and everything that copies a tree see
// it right.

// kinds of entries whose metadata is read together.
const (
	kindFile = 0
	kindDir  = 1
)

func kindOf(e entry) int {
	if e.dir {
		return kindDir
	}
	return kindFile
}

// needsMeta reports whether entry name of this directory lacks metadata a
// HEAD would give; it fills in what the cache knows. The caller holds d.mu
// or owns e.
func (d *Dir) needsMeta(name string, e *entry) bool {
	if e.dir {
		p := d.childPath(name)
		if d.fsys.layout.Classify(p) != Real {
			return false
		}
		_, ok := d.fsys.metas.lookupDir(d.fsys.dirKey(p))
		return !ok
	}
	if e.known || e.info.ETag == "" {
		return false
	}
	if md, ok := d.fsys.metas.lookup(e.info); ok {
		e.md, e.known = md, true
		return false
	}
	return true
}

// setListing installs a fresh listing and counts its entries without
// metadata, by kind; entries the cache knows are completed here. stream
// says a readdir reads it (fresh until that ends, then for the TTL);
// otherwise it is fresh for the TTL from now.
func (d *Dir) setListing(entries map[string]entry, stream bool) {
	var unknown [2]int
	for name, e := range entries {
		if d.needsMeta(name, &e) {
			unknown[kindOf(e)]++
		}
		entries[name] = e
	}
	d.mu.Lock()
	d.listing = entries
	if stream {
		d.listedAt = time.Time{}
		d.streams++
	} else {
		d.listedAt = d.fsys.now()
	}
	d.listGen++
	d.unknown = unknown
	d.metaTried = [2]bool{}
	d.mu.Unlock()
}

// metaDeferred reports whether a READDIRPLUS reply should leave name's
// attributes out: its metadata is unknown and the first stat will read it.
func (d *Dir) metaDeferred(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.listing[name]
	if !ok || !d.needsMeta(name, &e) {
		return false
	}
	k := kindOf(e)
	return !d.metaTried[k] && d.unknown[k] <= metaHeadBudget
}

// loadListingMeta reads, once per listing and kind, the metadata of every
// entry of the listing of that kind that lacks it, when they are few
// enough (metaHeadBudget). Concurrent lookups share one read.
func (d *Dir) loadListingMeta(ctx context.Context, kind int) {
	d.metaFetch.Do([]string{"files", "dirs"}[kind], func() (any, error) {
		d.mu.Lock()
		if d.listing == nil || d.metaTried[kind] || d.unknown[kind] > metaHeadBudget {
			d.mu.Unlock()
			return nil, nil
		}
		d.metaTried[kind] = true
		gen := d.listGen
		todo := map[string]entry{}
		for name, e := range d.listing {
			if kindOf(e) == kind && d.needsMeta(name, &e) {
				todo[name] = e
			}
		}
		d.mu.Unlock()
		// Shared by every lookup waiting here: one giving up must not cut
		// the others short.
		ctx := context.WithoutCancel(ctx)
		if kind == kindDir && len(todo) >= slurpMinDirs {
			if ok, _ := d.fsys.slurp(ctx, d.path(), len(todo)/slurpHeadsPerPage, nil); ok {
				for name, e := range todo { // those without a marker need no HEAD
					if !d.needsMeta(name, &e) {
						delete(todo, name)
					}
				}
			}
		}
		d.fsys.fetchMeta(ctx, d.path(), todo)
		d.mu.Lock()
		if d.listGen == gen && d.listing != nil {
			for name, e := range todo {
				if cur, ok := d.listing[name]; ok && e.known && !cur.dir && cur.info.ETag == e.info.ETag {
					d.listing[name] = e
				}
			}
		}
		d.mu.Unlock()
		return nil, nil
	})
}
