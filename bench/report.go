package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// peers are the columns ampfs is compared with for "ampfs/best peer".
var peers = []string{"s3fs", "rclone-writes", "rclone-full"}

type reportInput struct {
	mode       string
	n          int
	env        *benchEnv
	workloads  []workload
	columns    []string
	results    []result
	elapsed    time.Duration
	srvVersion string
	loadStart  string // /proc/loadavg when the bench started
	ampfsRev   string // from -ampfs-rev; empty: the work tree's HEAD
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cell is the median of one metric over the runs of one workload on one
// column, with how many runs failed.
type cell struct {
	ok     bool
	v      float64
	failed int
	runs   int
}

func fmtNum(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	case v >= 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func (c cell) String() string {
	if !c.ok {
		return "FAIL"
	}
	s := fmtNum(c.v)
	if c.failed > 0 {
		s += fmt.Sprintf(" (%d/%d FAIL)", c.failed, c.runs)
	}
	return s
}

type table struct {
	in reportInput
	// by[workload][column] = runs in order
	by map[string]map[string][]result
}

func (t table) runs(w, col string) []result { return t.by[w][col] }

func (t table) cellOf(w, col string, get func(result) (float64, bool)) cell {
	rs := t.runs(w, col)
	var xs []float64
	c := cell{runs: len(rs)}
	for _, r := range rs {
		if !r.ok() {
			c.failed++
			continue
		}
		if v, ok := get(r); ok {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return c
	}
	c.ok, c.v = true, median(xs)
	return c
}

// ratio is ampfs against other, oriented so that > 1 means ampfs is better.
func ratio(ampfs, other cell, higher bool) string {
	if !ampfs.ok || !other.ok || ampfs.v == 0 || other.v == 0 {
		return "—"
	}
	r := ampfs.v / other.v
	if !higher {
		r = other.v / ampfs.v
	}
	return fmt.Sprintf("%.2f×", r)
}

func report(in reportInput) string {
	t := table{in: in, by: map[string]map[string][]result{}}
	for _, r := range in.results {
		if t.by[r.Workload] == nil {
			t.by[r.Workload] = map[string][]result{}
		}
		t.by[r.Workload][r.FS] = append(t.by[r.Workload][r.FS], r)
	}
	var b strings.Builder
	title := "full"
	if in.mode == "quick" {
		title = "quick (bench-quick: smaller sizes, NOT the full benchmark)"
	}
	fmt.Fprintf(&b, "# ampfs bench — %s\n\n", title)
	writeMachine(&b, in)

	hasLimit := slices.Contains(in.columns, limitName)
	hasAmpfs := slices.Contains(in.columns, "ampfs")
	var peerCols []string
	for _, c := range in.columns {
		if slices.Contains(peers, c) {
			peerCols = append(peerCols, c)
		}
	}

	fmt.Fprintf(&b, "## Results (median of %d run(s))\n\n", in.n)
	hdr := append([]string{"workload"}, in.columns...)
	if hasAmpfs && len(peerCols) > 0 {
		hdr = append(hdr, "ampfs/best peer")
	}
	if hasAmpfs && hasLimit {
		hdr = append(hdr, "ampfs/limit")
	}
	writeRow(&b, hdr)
	writeRow(&b, slices.Repeat([]string{"---"}, len(hdr)))
	for _, w := range in.workloads {
		for _, m := range w.metrics {
			get := func(r result) (float64, bool) { v, ok := r.Metrics[m.key]; return v, ok }
			row := []string{m.label}
			cells := map[string]cell{}
			for _, col := range in.columns {
				cells[col] = t.cellOf(w.name, col, get)
				row = append(row, cells[col].String())
			}
			if hasAmpfs && len(peerCols) > 0 {
				best, name := cell{}, ""
				for _, p := range peerCols {
					c := cells[p]
					if !c.ok {
						continue
					}
					if !best.ok || (m.higher && c.v > best.v) || (!m.higher && c.v < best.v) {
						best, name = c, p
					}
				}
				r := ratio(cells["ampfs"], best, m.higher)
				if r != "—" {
					r += " (" + name + ")"
				}
				row = append(row, r)
			}
			if hasAmpfs && hasLimit {
				row = append(row, ratio(cells["ampfs"], cells[limitName], m.higher))
			}
			writeRow(&b, row)
		}
	}
	b.WriteString("\nRatios are oriented so that > 1 means ampfs is better (for times and latencies the ratio is other/ampfs). " +
		"Write workloads are timed until S3 itself shows every object with its full size. FAIL means the run failed, timed out " +
		"or produced wrong data (see Failures).\n\n")

	fmt.Fprintf(&b, "## Cost per run (median): wall time · CPU of the file-system process · its peak RSS · versitygw CPU\n\n")
	writeRow(&b, append([]string{"workload"}, in.columns...))
	writeRow(&b, slices.Repeat([]string{"---"}, len(in.columns)+1))
	for _, w := range in.workloads {
		row := []string{w.name}
		for _, col := range in.columns {
			wall := t.cellOf(w.name, col, func(r result) (float64, bool) { return r.Wall, true })
			if !wall.ok {
				row = append(row, "FAIL")
				continue
			}
			cpu := t.cellOf(w.name, col, func(r result) (float64, bool) { return r.CPU, true })
			rss := t.cellOf(w.name, col, func(r result) (float64, bool) { return r.PeakMiB, true })
			srv := t.cellOf(w.name, col, func(r result) (float64, bool) { return r.ServerCPU, true })
			row = append(row, fmt.Sprintf("%s s · cpu %s s · %s MiB · srv %s s",
				fmtNum(wall.v), fmtNum(cpu.v), fmtNum(rss.v), fmtNum(srv.v)))
		}
		writeRow(&b, row)
	}

	fmt.Fprintf(&b, "\n## S3 requests by kind (median run count of each kind; through the counting proxy)\n\n")
	writeRow(&b, append([]string{"workload"}, in.columns...))
	writeRow(&b, slices.Repeat([]string{"---"}, len(in.columns)+1))
	for _, w := range in.workloads {
		row := []string{w.name}
		for _, col := range in.columns {
			row = append(row, requestsCell(t.runs(w.name, col)))
		}
		writeRow(&b, row)
	}

	var fails []string
	for _, r := range in.results {
		if !r.ok() {
			fails = append(fails, fmt.Sprintf("- %s / %s / run %d: %s", r.Workload, r.FS, r.Run, r.Err))
		}
		if r.Note != "" {
			fails = append(fails, fmt.Sprintf("- %s / %s / run %d (note): %s", r.Workload, r.FS, r.Run, r.Note))
		}
	}
	b.WriteString("\n## Failures and notes\n\n")
	if len(fails) == 0 {
		b.WriteString("None.\n")
	} else {
		b.WriteString(strings.Join(fails, "\n") + "\n")
	}
	fmt.Fprintf(&b, "\nTotal bench time: %s.\n", in.elapsed.Round(time.Second))
	return b.String()
}

// requestsCell is the median count of each request kind over the runs
// (failed runs included: they show what a failing FS did).
func requestsCell(rs []result) string {
	if len(rs) == 0 {
		return ""
	}
	kinds := map[string][]float64{}
	for _, r := range rs {
		for k := range r.Requests.Count {
			kinds[k] = nil
		}
	}
	for k := range kinds {
		for _, r := range rs {
			kinds[k] = append(kinds[k], float64(r.Requests.Count[k]))
		}
	}
	st := reqStats{Count: map[string]int64{}}
	for k, xs := range kinds {
		if v := int64(median(xs) + 0.5); v > 0 {
			st.Count[k] = v
		}
	}
	if len(st.Count) == 0 {
		return "0"
	}
	return st.String()
}

func writeRow(b *strings.Builder, cells []string) {
	esc := make([]string, len(cells))
	for i, c := range cells {
		esc[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	b.WriteString("| " + strings.Join(esc, " | ") + " |\n")
}

func cmdLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown (" + err.Error() + ")"
	}
	return firstLine(string(out))
}

func memTotal() string {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "?"
}

// versitygwVersion reads the pinned version from tools/go.mod (the bench
// runs from the repository root).
func versitygwVersion() string {
	b, err := os.ReadFile(filepath.Join("tools", "go.mod"))
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "github.com/versity/versitygw" {
			return f[1] + " (tools/go.mod)"
		}
	}
	return "unknown"
}

func writeMachine(b *strings.Builder, in reportInput) {
	rev := in.ampfsRev
	if in.ampfsRev == "" {
		rev = cmdLine("git", "rev-parse", "--short", "HEAD")
		if out, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); len(strings.TrimSpace(string(out))) > 0 {
			rev += " (work tree with uncommitted changes)"
		}
	}
	sz := in.env.Sizes
	tree := "$GOROOT/src"
	if sz.TreeSub != "" {
		tree += "/" + sz.TreeSub
	}
	fmt.Fprintf(b, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(b, "- machine: %d cores (nproc), %s memory, kernel %s\n", runtime.NumCPU(), memTotal(), cmdLine("uname", "-r"))
	fmt.Fprintf(b, "- ampfs: git %s; %s\n", rev, cmdLine(in.env.Ampfs, "--version"))
	fmt.Fprintf(b, "- s3fs: %s\n", cmdLine("s3fs", "--version"))
	fmt.Fprintf(b, "- rclone: %s\n", cmdLine(in.env.Rclone, "version"))
	fmt.Fprintf(b, "- versitygw: %s, posix backend on tmpfs\n", in.srvVersion)
	fmt.Fprintf(b, "- load average (1/5/15 min) at start: %s, at end: %s (other work on the machine skews the numbers)\n", in.loadStart, loadAvg())
	fmt.Fprintf(b, "- go: %s; fio: %s\n", cmdLine("go", "version"), cmdLine("fio", "--version"))
	fmt.Fprintf(b, "- sizes: big objects %d MiB, seqwrite %d MiB, smallfiles %d × %d KiB, ls %d objects, reread %d MiB, randread %d s per block size, tree %s (%d files, %d dirs), timeout %s per run\n\n",
		sz.BigMiB, sz.WriteMiB, sz.SmallFiles, sz.SmallKiB, sz.LsObjects, sz.RereadMiB, sz.RandSeconds, tree,
		len(in.env.TreeFiles), in.env.TreeDirs, sz.Timeout)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
