package cache

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ampfs/ampfs/store"
)

const mib = 1 << 20

func TestSpans(t *testing.T) {
	tests := []struct {
		name string
		add  []span
		want []span
	}{
		{"one", []span{{10, 20}}, []span{{10, 20}}},
		{"empty range ignored", []span{{10, 10}, {5, 3}}, nil},
		{"disjoint, out of order", []span{{30, 40}, {10, 20}, {50, 60}}, []span{{10, 20}, {30, 40}, {50, 60}}},
		{"adjacent merge", []span{{10, 20}, {20, 30}, {0, 10}}, []span{{0, 30}}},
		{"overlap merge", []span{{10, 20}, {15, 25}}, []span{{10, 25}}},
		{"bridge several", []span{{0, 5}, {10, 15}, {20, 25}, {30, 35}, {4, 21}}, []span{{0, 25}, {30, 35}}},
		{"inside", []span{{0, 100}, {10, 20}}, []span{{0, 100}}},
		{"cover", []span{{10, 20}, {30, 40}, {0, 100}}, []span{{0, 100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x spans
			for _, s := range tt.add {
				x.add(s.off, s.end)
			}
			if !slices.Equal(x.s, tt.want) || x.all {
				t.Fatalf("spans %v (all %v), want %v", x.s, x.all, tt.want)
			}
		})
	}

	// overlaps against a byte map, on random sets.
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var x spans
		var bytes [200]bool
		for range r.IntN(12) {
			off := r.Int64N(200)
			end := min(200, off+r.Int64N(20))
			x.add(off, end)
			for i := off; i < end; i++ {
				bytes[i] = true
			}
		}
		for off := int64(0); off < 200; off++ {
			for end := off + 1; end <= 200; end += 1 + r.Int64N(10) {
				want := slices.Contains(bytes[off:end], true)
				if got := x.overlaps(off, end); got != want {
					t.Fatalf("%v overlaps(%d, %d) = %v, want %v", x.s, off, end, got, want)
				}
			}
		}
	}

	// Past maxSpans everything counts as touched.
	var x spans
	for i := range int64(maxSpans + 1) {
		x.add(2*i, 2*i+1)
	}
	if !x.all || !x.overlaps(1, 2) || len(x.s) != 0 {
		t.Errorf("%d disjoint ranges: all=%v, %d kept", maxSpans+1, x.all, len(x.s))
	}
}

// checkPlan fails unless plan covers [0, size) in order within S3's
// limits and copies only untouched bytes inside the source.
func checkPlan(t *testing.T, plan []partPlan, size int64, src *copySource) {
	t.Helper()
	if len(plan) == 0 || len(plan) > store.MaxParts {
		t.Fatalf("%d parts", len(plan))
	}
	pos := int64(0)
	for i, p := range plan {
		if p.off != pos || p.size <= 0 || p.size > store.MaxPartSize {
			t.Fatalf("part %d %+v after %d bytes", i, p, pos)
		}
		if i < len(plan)-1 && p.size < store.MinPartSize {
			t.Fatalf("part %d of %d is %d bytes", i, len(plan), p.size)
		}
		if p.copy && (src == nil || p.off+p.size > src.size || src.touched.overlaps(p.off, p.off+p.size)) {
			t.Fatalf("part %d %+v copies touched bytes or bytes past the source's %d", i, p, src.size)
		}
		pos += p.size
	}
	if pos != size {
		t.Fatalf("plan covers %d of %d bytes", pos, size)
	}
}

func touched(s ...span) spans {
	var x spans
	for _, s := range s {
		x.add(s.off, s.end)
	}
	return x
}

func TestPlanParts(t *testing.T) {
	const part = 8 * mib
	tests := []struct {
		name       string
		size       int64
		src        *copySource
		wantSent   int64
		wantCopies int // parts copied
	}{
		{"no source", 64 * mib, nil, 64 * mib, 0},
		{"unchanged", 64 * mib, &copySource{source: source{size: 64 * mib}}, 0, 1},
		{"append 1 KiB", 64*mib + 1024, &copySource{source: source{size: 64 * mib}}, 1024, 1},
		{"append to an unaligned size", 41*mib + 1024, &copySource{source: source{size: 41 * mib}}, 1024, 1},
		{"large source in copy-sized parts", 1024*mib + 1, &copySource{source: source{size: 1024 * mib}}, 1, 16},
		{"overwrite in the middle", 64 * mib, &copySource{source: source{size: 64 * mib}, touched: touched(span{30 * mib, 30*mib + 4096})}, store.MinPartSize, 2},
		{"overwrite at the start", 64 * mib, &copySource{source: source{size: 64 * mib}, touched: touched(span{0, 4096})}, store.MinPartSize, 1},
		// The last part may be short: the 5 untouched bytes after the
		// change are not worth a copy.
		{"overwrite near the end", 64 * mib, &copySource{source: source{size: 64 * mib}, touched: touched(span{64*mib - 10, 64*mib - 5})}, 10, 1},
		{"truncated and regrown", 64 * mib, &copySource{source: source{size: 64 * mib}, touched: touched(span{20 * mib, 64 * mib})}, 44 * mib, 1},
		{"shrunk", 30 * mib, &copySource{source: source{size: 64 * mib}, touched: touched(span{30 * mib, 64 * mib})}, 0, 1},
		{"source too short to copy", 20 * mib, &copySource{source: source{size: 4 * mib}}, 20 * mib, 0},
		{"all touched", 64 * mib, &copySource{source: source{size: 64 * mib}, touched: spans{all: true}}, 64 * mib, 0},
		{"clean run too short between two changes", 64 * mib,
			&copySource{source: source{size: 64 * mib}, touched: touched(span{10 * mib, 10*mib + 1}, span{13 * mib, 13*mib + 1})}, 5 * mib, 2},
		// A change every 6 MiB touches every 8 MiB part; the runs between
		// are copied where a 5 MiB part to send fits beside them.
		{"dense changes", 60 * mib, &copySource{source: source{size: 60 * mib}, touched: func() spans {
			var x spans
			for off := int64(0); off < 60*mib; off += 6 * mib {
				x.add(off, off+1)
			}
			return x
		}()}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := planParts(tt.size, PartSize(tt.size, part), tt.src)
			checkPlan(t, plan, tt.size, tt.src)
			copies := 0
			for _, p := range plan {
				if p.copy {
					copies++
				}
			}
			if tt.name == "dense changes" {
				// Only that it is valid and sends less than all of it.
				if sentBytes(plan) >= tt.size {
					t.Errorf("sends %d of %d bytes", sentBytes(plan), tt.size)
				}
				return
			}
			if got := sentBytes(plan); got != tt.wantSent || copies != tt.wantCopies {
				t.Errorf("sends %d bytes and copies %d parts, want %d and %d; plan %+v", got, copies, tt.wantSent, tt.wantCopies, plan)
			}
		})
	}
}

// TestPlanPartsRandom checks the layouts' invariants on random sources,
// changes and sizes, small part sizes included.
func TestPlanPartsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 3000 {
		srcSize := r.Int64N(200 * mib)
		size := max(1, srcSize+r.Int64N(40*mib)-20*mib)
		src := &copySource{source: source{size: srcSize}}
		for range r.IntN(20) {
			off := r.Int64N(srcSize + 1)
			src.touched.add(off, min(srcSize, off+r.Int64N(8*mib)+1))
		}
		if size < srcSize { // a truncate touches what it cut off
			src.touched.add(size, srcSize)
		}
		partSize := PartSize(size, store.MinPartSize+r.Int64N(10*mib))
		plan := planParts(size, partSize, src)
		t.Logf("case %d: size %d src %d touched %d ranges: %d parts, %d sent", i, size, srcSize, len(src.touched.s), len(plan), sentBytes(plan))
		checkPlan(t, plan, size, src)
		if u := planUniform(size, partSize, src); sentBytes(plan) > sentBytes(u) {
			t.Fatalf("plan sends %d bytes, the uniform one %d", sentBytes(plan), sentBytes(u))
		}
	}
	// Part counts near the limit: 180 GiB (in 19 MiB parts), 4,096
	// untouched runs of 5 MiB between changes of 40 MiB would need more
	// than 10,000 fitted parts; the uniform layout is used.
	period := int64(45 * mib)
	size := period * maxSpans
	src := &copySource{source: source{size: size}}
	for i := range int64(maxSpans) {
		src.touched.add(i*period+store.MinPartSize, (i+1)*period)
	}
	partSize := PartSize(size, 8*mib)
	if n := len(planFitted(size, partSize, src)); n <= store.MaxParts {
		t.Fatalf("fitted plan has %d parts; the test needs more than %d", n, store.MaxParts)
	}
	plan := planParts(size, partSize, src)
	checkPlan(t, plan, size, src)
	if !slices.Equal(plan, planUniform(size, partSize, src)) {
		t.Errorf("not the uniform plan")
	}
}
