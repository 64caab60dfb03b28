package cache

import (
	"slices"

	"github.com/ampfs/ampfs/store"
)

// Uploads that copy: a Staged filled from an object (Fill) remembers that
// object as its source and which byte ranges were written or truncated
// since. When it goes up as a multipart upload, the stretches nobody
// touched are copied on the server from the source (UploadPartCopy, with
// the source's ETag as a precondition) instead of being sent again, so
// appending a line to a 1 GiB log sends the line, not the GiB. The staging
// file still holds every byte: a copy that fails for any reason (the
// source changed or was deleted meanwhile, a rename's delete of the old
// key, a server without UploadPartCopy) is sent from the file instead.

// maxSpans bounds the ranges a Staged tracks; past it the whole file counts
// as touched (and nothing is copied), so random writes all over a file
// cost no more than the upload they make whole.
const maxSpans = 4096

// copyPartSize is the largest part an upload copies in one request (or the
// upload's part size, when that is larger): large enough that a 1 GiB
// object takes 16 requests, small enough that they run in parallel.
const copyPartSize = 64 << 20

// span is the byte range [off, end).
type span struct{ off, end int64 }

// spans is a set of byte ranges, kept sorted and merged. all means
// everything (too many ranges to keep).
type spans struct {
	s   []span
	all bool
}

// add puts [off, end) into the set.
func (x *spans) add(off, end int64) {
	if x.all || off >= end {
		return
	}
	// The first range that ends at or after off, and the first that
	// starts after end: the ones in between merge with [off, end).
	i, _ := slices.BinarySearchFunc(x.s, off, func(s span, off int64) int { return cmp64(s.end, off) })
	j := i
	for j < len(x.s) && x.s[j].off <= end {
		off, end = min(off, x.s[j].off), max(end, x.s[j].end)
		j++
	}
	x.s = slices.Replace(x.s, i, j, span{off, end})
	if len(x.s) > maxSpans {
		x.s, x.all = nil, true
	}
}

// overlaps reports whether any byte of [off, end) is in the set.
func (x *spans) overlaps(off, end int64) bool {
	if x.all {
		return true
	}
	i, _ := slices.BinarySearchFunc(x.s, off, func(s span, off int64) int { return cmp64(s.end-1, off) })
	return i < len(x.s) && x.s[i].off < end
}

func (x *spans) clone() spans {
	return spans{s: slices.Clone(x.s), all: x.all}
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// source is the object whose bytes a staging file holds outside its
// touched ranges.
type source struct {
	key, etag string
	size      int64 // bytes
}

// copySource is what an upload may copy: the source, and the ranges of
// the staging file that differ from it (as the upload started).
type copySource struct {
	source
	touched spans
}

// tracker collects the ranges touched while an upload is in flight: once
// it has stored the file as it was when it started (size bytes), that
// object is the new source, different from the staging file only there.
type tracker struct {
	size    int64
	touched spans
}

// partPlan is one part of a multipart upload: size bytes at off of the
// staging file, copied from the source (at the same offset) or sent.
type partPlan struct {
	off, size int64
	copy      bool
}

// planParts lays out the parts of a multipart upload of size bytes whose
// usual part size is partSize: parts of partSize, the last shorter, none
// copied when src is nil. With a source, parts lying in its untouched
// ranges are copied; of the two layouts tried, the one sending the fewest
// bytes wins, and neither breaks S3's limits (store.MinPartSize for every
// part but the last, store.MaxPartSize, store.MaxParts).
func planParts(size, partSize int64, src *copySource) []partPlan {
	uniform := planUniform(size, partSize, src)
	if src == nil {
		return uniform
	}
	best := uniform
	if fitted := planFitted(size, partSize, src); len(fitted) <= store.MaxParts {
		if a, b := sentBytes(fitted), sentBytes(uniform); a < b || a == b && len(fitted) < len(uniform) {
			best = fitted
		}
	}
	return best
}

// sentBytes is what a plan uploads, copies not counted.
func sentBytes(plan []partPlan) int64 {
	var n int64
	for _, p := range plan {
		if !p.copy {
			n += p.size
		}
	}
	return n
}

// planUniform: parts of partSize; each that lies inside the source and
// touches no changed byte is copied.
func planUniform(size, partSize int64, src *copySource) []partPlan {
	n := int((size + partSize - 1) / partSize)
	plan := make([]partPlan, 0, n)
	for off := int64(0); off < size; off += partSize {
		p := partPlan{off: off, size: min(partSize, size-off)}
		p.copy = src != nil && p.off+p.size <= src.size && !src.touched.overlaps(p.off, p.off+p.size)
		plan = append(plan, p)
	}
	return plan
}

// planFitted puts the part boundaries at the edges of the untouched
// ranges: each untouched range of at least store.MinPartSize is copied
// (in parts of up to copyPartSize), the rest is sent. A stretch to send
// that is shorter than the minimum part size and not at the end takes the
// bytes it lacks from the copied range after it (or before it), or absorbs
// that range when it is too short to give them.
func planFitted(size, partSize int64, src *copySource) []partPlan {
	type seg struct {
		off, end int64
		copy     bool
	}
	// Untouched ranges inside the source, long enough to copy.
	var segs []seg
	limit := min(src.size, size)
	if !src.touched.all {
		pos := int64(0)
		add := func(off, end int64) {
			if end-off >= store.MinPartSize {
				segs = append(segs, seg{off, end, true})
			}
		}
		for _, t := range src.touched.s {
			if t.off >= limit {
				break
			}
			add(pos, t.off)
			pos = t.end
		}
		add(pos, limit)
	}
	// The stretches between them are sent.
	var all []seg
	pos := int64(0)
	for _, c := range segs {
		if c.off > pos {
			all = append(all, seg{pos, c.off, false})
		}
		all = append(all, c)
		pos = c.end
	}
	if pos < size {
		all = append(all, seg{pos, size, false})
	}
	// Sent stretches too short for a part, unless last: take bytes from a
	// copied neighbour, or absorb the next one.
	for i := 0; i < len(all); i++ {
		g := &all[i]
		if g.copy || g.end-g.off >= store.MinPartSize || i == len(all)-1 {
			continue
		}
		need := store.MinPartSize - (g.end - g.off)
		// The stretch is not last, so a copied range follows it.
		next := &all[i+1]
		nextLast := i+1 == len(all)-1
		switch {
		case next.end-(next.off+need) >= store.MinPartSize || nextLast && next.end-(next.off+need) > 0:
			next.off += need
			g.end = next.off
		case i > 0 && (all[i-1].end-need)-all[i-1].off >= store.MinPartSize:
			all[i-1].end -= need
			g.off = all[i-1].end
		default:
			// Absorb the copied range (and the sent stretch after it).
			g.end = next.end
			j := i + 2
			if j < len(all) && !all[j].copy {
				g.end = all[j].end
				j++
			}
			all = slices.Delete(all, i+1, j)
			i-- // look at the merged stretch again
		}
	}
	// Split into parts.
	copyMax := max(partSize, copyPartSize)
	var plan []partPlan
	for _, g := range all {
		n := g.end - g.off
		var k int64
		if g.copy {
			k = (n + copyMax - 1) / copyMax
		} else {
			k = max(1, n/partSize, (n+store.MaxPartSize-1)/store.MaxPartSize)
		}
		for i := range k {
			off, end := g.off+n*i/k, g.off+n*(i+1)/k
			plan = append(plan, partPlan{off: off, size: end - off, copy: g.copy})
		}
	}
	return plan
}
