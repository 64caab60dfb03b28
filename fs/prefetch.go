package fs

import (
	"context"
	"path"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ampfs/ampfs/fs/access"
)

// Listing prefetch for tree walkers.
//
// find, du, ls -R, rsync and cp -r read a directory, then each of its
// subdirectories in turn: one LIST round trip after another, the walker
// idle during each. When a subdirectory of a listed directory is read,
// that is a walk: the listings of its siblings are fetched in the
// background, prefetchParallel at a time, and each sibling's readdir takes
// its listing from here instead of asking the server. The walk deepens
// the same way, so the next level is fetched while this one is walked.
//
// A prefetched listing is as fresh as any other: it answers only within
// the metadata TTL of when it was fetched, and a change made through the
// mount in that directory drops it (Dir.note), a directory rename drops
// them all.

const (
	// prefetchParallel LISTs at a time: enough to hide the round trips,
	// few enough not to crowd out the walker's own requests.
	prefetchParallel = 4
	// prefetchSiblings bounds the listings fetched for one walk step: a
	// directory with thousands of subdirectories is not listed whole
	// because one of them was read.
	prefetchSiblings = 256
	// prefetchTimeout bounds one step's background work.
	prefetchTimeout = 30 * time.Second
)

// prefetcher holds listings fetched ahead of their readdir, by path.
type prefetcher struct {
	mu sync.Mutex
	// done holds fetched listings; pending the fetches in flight, closed
	// when they end. GUARDED_BY(mu)
	done    map[string]prefetched
	pending map[string]chan struct{}
	// walked is the listing generation of each parent whose children were
	// prefetched, so one walk step starts one prefetch. GUARDED_BY(mu)
	walked map[*Dir]uint64
	// stale marks fetches in flight that a change overtook: their result
	// is dropped. GUARDED_BY(mu)
	stale map[string]bool
}

type prefetched struct {
	entries map[string]entry
	at      time.Time
}

func newPrefetcher() *prefetcher {
	return &prefetcher{done: map[string]prefetched{}, pending: map[string]chan struct{}{}, walked: map[*Dir]uint64{}, stale: map[string]bool{}}
}

// take returns the prefetched listing of directory p if it is fresh,
// waiting for one in flight; it is handed out once.
func (fsys *FS) takePrefetched(ctx context.Context, p string) (map[string]entry, bool) {
	pf := fsys.prefetch
	pf.mu.Lock()
	ch := pf.pending[p]
	pf.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false
		}
	}
	pf.mu.Lock()
	defer pf.mu.Unlock()
	l, ok := pf.done[p]
	delete(pf.done, p)
	if !ok || fsys.now().Sub(l.at) >= fsys.ttl {
		return nil, false
	}
	return l.entries, true
}

// dropPrefetched forgets what was fetched for p (a change was made there).
func (fsys *FS) dropPrefetched(p string) {
	pf := fsys.prefetch
	pf.mu.Lock()
	delete(pf.done, p)
	if pf.pending[p] != nil {
		pf.stale[p] = true
	}
	pf.mu.Unlock()
}

// dropAllPrefetched forgets every prefetched listing (a directory was
// renamed: paths below it moved).
func (fsys *FS) dropAllPrefetched() {
	pf := fsys.prefetch
	pf.mu.Lock()
	clear(pf.done)
	for p := range pf.pending {
		pf.stale[p] = true
	}
	pf.mu.Unlock()
}

// walkStep is told that directory d is being read: if its parent has a
// fresh listing, the parent's other subdirectories are prefetched (once
// per parent listing).
func (d *Dir) walkStep() {
	_, parentInode := d.Parent()
	if parentInode == nil {
		return
	}
	parent, ok := parentInode.Operations().(*Dir)
	if !ok {
		return
	}
	pf := d.fsys.prefetch
	parent.mu.Lock()
	gen := parent.listGen
	parent.mu.Unlock()
	pf.mu.Lock()
	done := pf.walked[parent] == gen
	pf.mu.Unlock()
	if done {
		return // every sibling's readdir after the first: nothing to scan
	}
	self := d.path()
	parent.mu.Lock()
	gen, listing := parent.listGen, parent.listing
	var names []string
	for name, e := range listing {
		if e.dir {
			names = append(names, name)
		}
	}
	parent.mu.Unlock()
	if len(names) < 2 {
		return
	}
	pf.mu.Lock()
	if pf.walked[parent] == gen {
		pf.mu.Unlock()
		return
	}
	pf.walked[parent] = gen
	// Forget steps of listings gone: the map stays as small as the walk.
	if len(pf.walked) > 4*prefetchSiblings {
		clear(pf.walked)
		pf.walked[parent] = gen
	}
	sort.Strings(names)
	parentPath := parent.path()
	var todo []string
	for _, name := range names {
		p := path.Join(parentPath, name)
		if p == self || pf.pending[p] != nil {
			continue
		}
		if l, ok := pf.done[p]; ok && d.fsys.now().Sub(l.at) < d.fsys.ttl {
			continue
		}
		if d.fsys.layout.Classify(p) != Real || !d.fsys.dirRights(p).Has(access.List) {
			continue
		}
		pf.pending[p] = make(chan struct{})
		todo = append(todo, p)
		if len(todo) == prefetchSiblings {
			break
		}
	}
	pf.mu.Unlock()
	if len(todo) > 0 {
		go d.fsys.walkAhead(parentPath, len(names), todo)
	}
}

// unknownSubdirs returns the subdirectories in a prefetched listing of p
// whose marker metadata is unknown: the walker stats each of them before
// reading it, and would otherwise wait for those HEADs (meta_lazy.go)
// then, so the prefetch reads them too.
func (fsys *FS) unknownSubdirs(p string, entries map[string]entry) map[string]entry {
	todo := map[string]entry{}
	for name, e := range entries {
		if !e.dir {
			continue
		}
		cp := path.Join(p, name)
		if fsys.layout.Classify(cp) != Real {
			continue
		}
		if _, ok := fsys.metas.lookupDir(fsys.dirKey(cp)); !ok {
			todo[name] = e
		}
	}
	return todo
}

// prefetchListings lists the directories at paths, a few at a time, in
// the order a walker reads them.
func (fsys *FS) prefetchListings(paths []string) {
	ctx, cancel := context.WithTimeout(context.Background(), prefetchTimeout)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(prefetchParallel)
	for _, p := range paths {
		g.Go(func() error {
			at := fsys.now()
			entries, err := fsys.listDir(ctx, fsys.dirKey(p))
			var dirs map[string]entry
			if err == nil {
				// Taken before the readdir gets (and changes) the map.
				dirs = fsys.unknownSubdirs(p, entries)
			}
			pf := fsys.prefetch
			pf.mu.Lock()
			if err == nil && !pf.stale[p] {
				pf.done[p] = prefetched{entries: entries, at: at}
			}
			delete(pf.stale, p)
			close(pf.pending[p])
			delete(pf.pending, p)
			pf.mu.Unlock()
			if len(dirs) > 0 && len(dirs) <= metaHeadBudget {
				fsys.fetchMeta(ctx, p, dirs)
			}
			return nil // a failed prefetch is retried by the readdir itself
		})
	}
	g.Wait()
	// Listings nobody read before their TTL ran out are dropped.
	pf := fsys.prefetch
	pf.mu.Lock()
	for p, l := range pf.done {
		if fsys.now().Sub(l.at) >= fsys.ttl {
			delete(pf.done, p)
		}
	}
	pf.mu.Unlock()
}
