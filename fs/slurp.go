package fs

import (
	"context"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/ampfs/ampfs/fs/access"
	"github.com/ampfs/ampfs/store"
)

// Flat listings of a walked subtree ("slurp", after goofys).
//
// A walker (find, du, ls -R, rsync) stats each subdirectory of a listed
// directory before reading it. A directory's attributes live on its marker
// object, which a delimited listing of the parent does not show, so the
// first such stat reads the markers of all the listing's subdirectories
// with a HEAD each (meta_lazy.go), and then each subdirectory costs a LIST
// of its own when it is read.
//
// When a directory has at least slurpMinDirs subdirectories whose markers
// are unknown, one ListObjectsV2 of its whole subtree without a delimiter
// is tried first, if it ends within one page per slurpHeadsPerPage of
// those HEADs; and when a walk reaches a directory with at least
// slurpMinDirs subdirectories, its subtree is listed flat instead of each
// sibling on its own (walkAhead), if that ends within a page for every
// two of those LISTs. The walk goes on below in the same way once the
// listings expire (the TTL counts from the flat LIST). Its keys say, for every directory below, whether it has a
// marker (the key "dir/"): those without one need no HEAD at all; and they
// give every directory's listing, which the walker's readdirs then take
// from the prefetcher (prefetch.go) as if each had been listed. A tree
// put by other tools, which write no markers (aws s3 sync, the console's
// uploads), is then walked for one LIST per 1,000 keys where it cost a
// LIST and a HEAD per directory (make bench's find of the Go tree: 1,418
// LISTs and 1,445 HEADs). A subtree too large for the budget costs the
// pages read before giving up and is not tried again for the TTL.
//
// The listings are built from the keys by the rules of the delimited
// listing (listDir): the first segment below the directory names an entry,
// a directory's own marker is no entry, a name that is not valid is
// skipped with everything below it, and a directory hides a file of the
// same name. They are as fresh as any prefetched listing (the TTL, and
// dropped by a change through the mount), and only directories the user
// may list get one.
const (
	slurpMinDirs = 8
	// slurpHeadsPerPage: a LIST page is worth about two HEADs of round
	// trips and server work.
	slurpHeadsPerPage = 2
)

// slurper remembers the subtrees listed flat, or found too large, within
// the TTL, so the walk below them does not try again.
type slurper struct {
	mu   sync.Mutex
	done map[string]time.Time // by path. GUARDED_BY(mu)
}

// covered reports whether p or a directory above it was slurped (or found
// too large) within the TTL.
func (fsys *FS) slurpCovered(p string) bool {
	s := &fsys.slurps
	s.mu.Lock()
	defer s.mu.Unlock()
	now := fsys.now()
	for q := p; ; q = path.Dir(q) {
		if q == "." {
			q = ""
		}
		if at, ok := s.done[q]; ok && now.Sub(at) < fsys.ttl {
			return true
		}
		if q == "" {
			return false
		}
	}
}

func (fsys *FS) slurpMark(p string, at time.Time) {
	s := &fsys.slurps
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = map[string]time.Time{}
	}
	for q, t := range s.done { // the map stays as small as the walks
		if at.Sub(t) >= fsys.ttl {
			delete(s.done, q)
		}
	}
	s.done[p] = at
}

// slurp lists the subtree of the directory at p flat, if that takes at
// most maxPages pages, and records what it learns (see above): it reports
// whether it did. claimed are directories whose pending prefetch entries
// the caller made for this (walkAhead): each is released as soon as the
// pages read hold all of its keys (keys come in order), so the walker,
// which waits for them, need not wait for the last page; left are those
// it did not release, for the caller to fetch.
func (fsys *FS) slurp(ctx context.Context, p string, maxPages int, claimed []string) (ok bool, left []string) {
	if maxPages < 1 || fsys.slurpCovered(p) {
		return false, claimed
	}
	at := fsys.now()
	fsys.slurpMark(p, at)
	prefix := fsys.dirKey(p)
	mine := map[string]bool{}
	for _, dp := range claimed {
		mine[dp] = true
	}
	installed := map[string]bool{}
	var objs []store.ObjectInfo
	// install hands out the listings of the directories whose keys have
	// all been read: every one at the end, else those whose keys sort
	// before the last key read and are not its prefix.
	install := func(final bool) {
		last := ""
		if len(objs) > 0 {
			last = objs[len(objs)-1].Key
		}
		listings, markers := slurpListings(p, prefix, objs)
		pf := fsys.prefetch
		pf.mu.Lock()
		defer pf.mu.Unlock()
		for dp, entries := range listings {
			if dp == p || installed[dp] {
				continue // p is listed already
			}
			if k := fsys.dirKey(dp); !final && (k >= last || strings.HasPrefix(last, k)) {
				continue // more of its keys may follow
			}
			installed[dp] = true
			if fsys.layout.Classify(dp) != Real || !fsys.dirRights(dp).Has(access.List) {
				continue // as readdir would
			}
			if !markers[dp] {
				fsys.metas.rememberDir(fsys.dirKey(dp), dirMeta{})
			}
			if pf.pending[dp] != nil && !mine[dp] {
				continue // a LIST of its own is on its way
			}
			if !pf.stale[dp] {
				pf.done[dp] = prefetched{entries: entries, at: at}
			}
			if mine[dp] {
				delete(mine, dp)
				delete(pf.stale, dp)
				close(pf.pending[dp])
				delete(pf.pending, dp)
			}
		}
		if final { // claimed directories the keys do not have: readdir lists them
			for dp := range mine {
				delete(pf.stale, dp)
				close(pf.pending[dp])
				delete(pf.pending, dp)
			}
			clear(mine)
		}
	}
	remaining := func() []string {
		var out []string
		for _, dp := range claimed {
			if mine[dp] {
				out = append(out, dp)
			}
		}
		return out
	}
	in := store.ListInput{Prefix: prefix}
	for pages := 1; ; pages++ {
		page, err := fsys.bucket.List(ctx, in)
		if err != nil {
			return false, remaining() // the HEADs, and later LISTs, will say what is wrong
		}
		objs = append(objs, page.Objects...)
		if !page.IsTruncated || page.NextContinuationToken == "" {
			break
		}
		if pages == maxPages {
			return false, remaining() // too large: HEADs and LISTs are cheaper
		}
		if len(mine) > 0 {
			install(false)
		}
		in.ContinuationToken = page.NextContinuationToken
	}
	install(true)
	fsys.log.Debug().Str("op", "slurp").Str("path", p).Int("keys", len(objs)).Int("dirs", len(installed)).Msg("listed a subtree flat")
	return true, nil
}

// slurpListings builds, from the keys of a flat listing of prefix (the
// directory at p), the listing of every directory below p by listDir's
// rules, keyed by path, and says which of them have a marker.
func slurpListings(p, prefix string, objs []store.ObjectInfo) (map[string]map[string]entry, map[string]bool) {
	listings := map[string]map[string]entry{p: {}}
	markers := map[string]bool{}
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Key, prefix)
		if !ok {
			continue
		}
		dir := p
		for {
			name, below, isDir := strings.Cut(rest, "/")
			if name == "" && !isDir {
				markers[dir] = true // the key is dir's own marker
				break
			}
			if !validName(name) {
				break // neither this name nor anything below it is shown
			}
			if !isDir {
				if e, ok := listings[dir][name]; !ok || !e.dir {
					listings[dir][name] = entry{info: o}
				}
				break
			}
			listings[dir][name] = entry{dir: true} // a directory hides a file
			dir = childOf(dir, name)
			if listings[dir] == nil {
				listings[dir] = map[string]entry{}
			}
			rest = below
		}
	}
	return listings, markers
}

// walkAhead fetches the listings of the directories at todo, the
// subdirectories of parent (which has dirs of them) that a walk is about
// to read: flat, with their subtrees, when that is cheaper than a LIST of
// each (slurp); else one by one (prefetchListings).
func (fsys *FS) walkAhead(parent string, dirs int, todo []string) {
	if dirs >= slurpMinDirs {
		ctx, cancel := context.WithTimeout(context.Background(), prefetchTimeout)
		_, todo = fsys.slurp(ctx, parent, len(todo)/2, todo)
		cancel()
	}
	if len(todo) > 0 {
		fsys.prefetchListings(todo)
	}
}
