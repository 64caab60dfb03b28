// Command bench compares ampfs with s3fs and rclone mount on one local
// versitygw, and with the same transfers done directly with aws-sdk-go-v2
// (the "limit" row). It is a benchmark, not a test: run it with `make bench`
// or `make bench-quick` as root. See bench/README.md.
//
// Subcommands used internally: "bench proxy TARGET" (the counting proxy),
// "bench limit ENVFILE WORKLOAD" (one limit run), "bench ttfb FILE".
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	sub := map[string]func([]string) error{"proxy": proxyMain, "limit": limitMain, "ttfb": ttfbMain}
	if len(os.Args) > 1 && sub[os.Args[1]] != nil {
		if err := sub[os.Args[1]](os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		return
	}
	os.Exit(benchMain())
}

type options struct {
	quick     bool
	n         int
	only      []string
	fsNames   []string
	dir       string
	out       string
	ampfs     string
	ampfsRev  string
	versitygw string
	rclone    string
	tmpfsGiB  int
	timeout   time.Duration
}

func benchMain() int {
	var o options
	var only, fsList string
	flag.BoolVar(&o.quick, "quick", false, "smaller sizes and a subset-friendly timeout (make bench-quick)")
	flag.IntVar(&o.n, "n", 3, "runs of each workload on each file system; the table shows medians")
	flag.StringVar(&only, "only", "", "comma-separated workloads to run (default: all)")
	flag.StringVar(&fsList, "fs", "ampfs,s3fs,rclone-writes,rclone-full,limit", "comma-separated columns to run")
	flag.StringVar(&o.dir, "dir", ".bench/run", "work directory (mounts, cache dirs, logs, a tmpfs)")
	flag.StringVar(&o.out, "out", "", "also write the markdown report here")
	flag.StringVar(&o.ampfs, "ampfs", "bin/ampfs", "ampfs binary")
	flag.StringVar(&o.ampfsRev, "ampfs-rev", "", "the revision the ampfs binary was built from (default: git HEAD of the work tree)")
	flag.StringVar(&o.versitygw, "versitygw", "bin/versitygw", "versitygw binary")
	flag.StringVar(&o.rclone, "rclone", ".bench/bin/rclone", "rclone binary")
	flag.IntVar(&o.tmpfsGiB, "tmpfs-gib", 16, "size limit of the tmpfs for the server's data and the local sources (seqwrite4 needs about 8 GiB of it while versitygw assembles four 1 GiB multipart uploads)")
	flag.DurationVar(&o.timeout, "timeout", 0, "per workload run (default: 10m full, 90s quick)")
	flag.Parse()
	if only != "" {
		o.only = strings.Split(only, ",")
	}
	o.fsNames = strings.Split(fsList, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	err := run(ctx, o)
	// Whatever happened, nothing the bench started may outlive it.
	stopAllProcs()
	left := leftMounts(o.dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	}
	if left != "" {
		fmt.Fprintf(os.Stderr, "\nbench: MOUNTS LEFT BEHIND under %s:\n%s\n", o.dir, left)
		return 2
	}
	if err != nil {
		return 1
	}
	return 0
}

// leftMounts detaches whatever is still mounted under dir (FUSE mounts
// first, the tmpfs last) and describes what it found.
func leftMounts(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err.Error()
	}
	m, err := mountsUnder(abs)
	if err != nil {
		return err.Error()
	}
	if len(m) == 0 {
		return ""
	}
	var mps []string
	for mp := range m {
		mps = append(mps, mp)
	}
	// Deepest first.
	slices.SortFunc(mps, func(a, b string) int { return len(b) - len(a) })
	var lines []string
	for _, mp := range mps {
		lines = append(lines, fmt.Sprintf("  %s (%s)", mp, m[mp]))
		if err := forceUnmount(mp); err != nil {
			lines = append(lines, "    "+err.Error())
		}
	}
	return strings.Join(lines, "\n")
}

func checkTools(o options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the bench mounts a tmpfs and drops the kernel's caches")
	}
	var missing []string
	for _, p := range []string{o.ampfs, o.versitygw, o.rclone} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, t := range []string{"s3fs", "fio", "fusermount3", "dd", "tar", "diff", "find", "go"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing: %s (run `make bench-deps build bin/versitygw`)", strings.Join(missing, ", "))
	}
	return nil
}

func run(ctx context.Context, o options) error {
	started, load := time.Now(), loadAvg()
	if err := checkTools(o); err != nil {
		return err
	}
	var err error
	for _, p := range []*string{&o.dir, &o.ampfs, &o.versitygw, &o.rclone} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if m, _ := mountsUnder(o.dir); len(m) > 0 {
		return fmt.Errorf("something is still mounted under %s from an earlier run: %v", o.dir, m)
	}
	if err := os.RemoveAll(o.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}

	// Run private copies: a rebuild of the shared binaries during a long run
	// must not change what is measured.
	for _, p := range []*string{&o.ampfs, &o.versitygw} {
		dst := filepath.Join(o.dir, "bin", filepath.Base(*p))
		if err := copyFile(*p, dst); err != nil {
			return err
		}
		*p = dst
	}

	sz := fullSizes
	mode := "full"
	if o.quick {
		sz, mode = quickSizes, "quick"
	}
	if o.timeout > 0 {
		sz.Timeout = o.timeout
	}
	all := workloads()
	var ws []workload
	for _, w := range all {
		if len(o.only) == 0 || slices.Contains(o.only, w.name) {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return fmt.Errorf("no workload matches -only %v", o.only)
	}

	tmpfs := filepath.Join(o.dir, "tmpfs")
	if err := mountTmpfs(tmpfs, o.tmpfsGiB); err != nil {
		return err
	}
	defer func() {
		if err := syscall.Unmount(tmpfs, 0); err != nil {
			fmt.Fprintf(os.Stderr, "bench: umount %s: %v\n", tmpfs, err)
		}
	}()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := &benchEnv{
		Sizes:      sz,
		Run:        o.dir,
		Scratch:    filepath.Join(tmpfs, "scratch"),
		Ampfs:      o.ampfs,
		Rclone:     o.rclone,
		S3fsPasswd: filepath.Join(o.dir, "s3fs.passwd"),
		Self:       self,
	}
	if err := os.MkdirAll(env.Scratch, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(env.S3fsPasswd, []byte(accessKey+":"+secretKey+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(o.dir, "cache"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.dir, "cache", "rclone.conf.empty"), nil, 0o600); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "bench: %s mode, n=%d, work dir %s\n", mode, o.n, o.dir)
	srv, err := startServer(ctx, o.versitygw, filepath.Join(tmpfs, "s3"), filepath.Join(o.dir, "versitygw.log"))
	if err != nil {
		return err
	}
	defer srv.stop()
	env.Direct, env.Proxy = srv.direct, srv.viaPx
	direct := newClient(srv.direct)

	t0 := time.Now()
	fmt.Fprintf(os.Stderr, "bench: making local sources and seeding the server ...\n")
	if err := prepareLocal(ctx, env); err != nil {
		return fmt.Errorf("preparing local data: %w", err)
	}
	if err := seedServer(ctx, env, direct); err != nil {
		return fmt.Errorf("seeding the server: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: set-up took %s (tree: %d files, %d dirs)\n",
		time.Since(t0).Round(time.Millisecond), len(env.TreeFiles), env.TreeDirs)
	envFile := filepath.Join(o.dir, "env.json")
	b, _ := json.Marshal(env)
	if err := os.WriteFile(envFile, b, 0o644); err != nil {
		return err
	}

	var cols []fileSystem
	for _, f := range fileSystems(env) {
		if slices.Contains(o.fsNames, f.name) {
			cols = append(cols, f)
		}
	}
	withLimit := slices.Contains(o.fsNames, limitName)

	var results []result
	jl, err := os.Create(filepath.Join(o.dir, "results.jsonl"))
	if err != nil {
		return err
	}
	defer jl.Close()
	record := func(r result) {
		results = append(results, r)
		b, _ := json.Marshal(r)
		jl.Write(append(b, '\n'))
		fmt.Fprintf(os.Stderr, "  %s\n", r.summary())
	}
	for run := 1; run <= o.n; run++ {
		for _, w := range ws {
			fmt.Fprintf(os.Stderr, "bench: run %d/%d %s\n", run, o.n, w.name)
			for _, f := range cols {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				record(runFS(ctx, env, srv, direct, w, f, run))
			}
			if withLimit {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				record(runLimit(ctx, env, srv, direct, w, envFile, run))
			}
		}
	}
	names := make([]string, 0, len(cols)+1)
	for _, f := range cols {
		names = append(names, f.name)
	}
	if withLimit {
		names = append(names, limitName)
	}
	rep := report(reportInput{
		mode: mode, n: o.n, env: env, workloads: ws, columns: names, results: results,
		elapsed: time.Since(started), srvVersion: versitygwVersion(), loadStart: load, ampfsRev: o.ampfsRev,
	})
	fmt.Println(rep)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(rep), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// result is one run of one workload on one column.
type result struct {
	Workload  string             `json:"workload"`
	FS        string             `json:"fs"`
	Run       int                `json:"run"`
	Err       string             `json:"err,omitempty"`
	Note      string             `json:"note,omitempty"`
	Metrics   map[string]float64 `json:"metrics"`
	Wall      float64            `json:"wall_s"`
	CPU       float64            `json:"cpu_s"`        // the FS process (or the limit process)
	PeakMiB   float64            `json:"peak_rss_mib"` // VmHWM of that process
	ServerCPU float64            `json:"server_cpu_s"` // versitygw
	ProxyCPU  float64            `json:"proxy_cpu_s"`
	Requests  reqStats           `json:"requests"`
}

func (r result) ok() bool { return r.Err == "" }

func (r result) summary() string {
	if !r.ok() {
		return fmt.Sprintf("%-14s FAIL: %s", r.FS, r.Err)
	}
	var ms []string
	for k, v := range r.Metrics {
		ms = append(ms, fmt.Sprintf("%s=%.4g", k, v))
	}
	slices.Sort(ms)
	s := fmt.Sprintf("%-14s %s  wall %.2fs cpu %.2fs rss %.0fMiB srv %.2fs reqs %d",
		r.FS, strings.Join(ms, " "), r.Wall, r.CPU, r.PeakMiB, r.ServerCPU, r.Requests.total())
	if r.Note != "" {
		s += "  (" + r.Note + ")"
	}
	return s
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 240 {
		s = s[:240] + "..."
	}
	return s
}

func prep(ctx context.Context, env *benchEnv, direct *s3.Client, w workload) error {
	if w.prep == nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := w.prep(pctx, env, direct); err != nil {
		return fmt.Errorf("preparing: %w", err)
	}
	return nil
}

func runFS(ctx context.Context, env *benchEnv, srv *server, direct *s3.Client, w workload, f fileSystem, run int) (res result) {
	res = result{Workload: w.name, FS: f.name, Run: run}
	if err := prep(ctx, env, direct, w); err != nil {
		res.Err = firstLine(err.Error())
		return res
	}
	mnt := filepath.Join(env.Run, "mnt", f.name)
	cacheDir := filepath.Join(env.Run, "cache", f.name)
	logPath := filepath.Join(env.Run, "logs", f.name+".log")
	_ = os.MkdirAll(filepath.Dir(logPath), 0o755)
	m, err := mountFresh(ctx, env, f, srv.viaPx, w.bucket, mnt, cacheDir, logPath)
	if err != nil {
		res.Err = "mount: " + firstLine(err.Error())
		return res
	}
	defer func() {
		if err := m.unmount(); err != nil {
			res.Note = firstLine(err.Error())
		}
	}()

	if _, err := srv.proxyStats(true); err != nil {
		res.Err = "proxy: " + err.Error()
		return res
	}
	st0, _ := readProcStat(m.p.pid())
	srv0, px0 := srv.cpu(), srv.proxyCPU()

	wctx, cancel := context.WithTimeout(ctx, env.Sizes.Timeout)
	t0 := time.Now()
	metrics, err := w.onFS(wctx, env, mnt, direct)
	wall := time.Since(t0)
	cancel()

	st1, serr := readProcStat(m.p.pid())
	res.Wall = wall.Seconds()
	if serr == nil {
		res.CPU = (st1.CPU - st0.CPU).Seconds()
		res.PeakMiB = float64(st1.PeakKB) / 1024
	}
	res.ServerCPU = (srv.cpu() - srv0).Seconds()
	res.ProxyCPU = (srv.proxyCPU() - px0).Seconds()
	res.Requests, _ = srv.proxyStats(true)
	if err != nil {
		if wctx.Err() == context.DeadlineExceeded {
			res.Err = fmt.Sprintf("timeout after %s: %s", env.Sizes.Timeout, firstLine(err.Error()))
		} else {
			res.Err = firstLine(err.Error())
		}
		return res
	}
	if m.p.exited() {
		res.Err = fmt.Sprintf("%s exited during the run: %v", f.name, m.p.err)
		return res
	}
	res.Metrics = metrics
	if w.verify != nil {
		vctx, cancel := context.WithTimeout(ctx, env.Sizes.Timeout)
		defer cancel()
		if err := w.verify(vctx, env, mnt, direct); err != nil {
			res.Err = "verify: " + firstLine(err.Error())
		}
	}
	return res
}

func runLimit(ctx context.Context, env *benchEnv, srv *server, direct *s3.Client, w workload, envFile string, run int) result {
	res := result{Workload: w.name, FS: limitName, Run: run}
	if err := prep(ctx, env, direct, w); err != nil {
		res.Err = firstLine(err.Error())
		return res
	}
	if err := dropCaches(); err != nil {
		res.Err = err.Error()
		return res
	}
	if _, err := srv.proxyStats(true); err != nil {
		res.Err = "proxy: " + err.Error()
		return res
	}
	srv0, px0 := srv.cpu(), srv.proxyCPU()
	wctx, cancel := context.WithTimeout(ctx, env.Sizes.Timeout)
	out, _, err := runCmd(wctx, env.Self, "limit", envFile, w.name)
	timedOut := wctx.Err() == context.DeadlineExceeded
	cancel()
	res.ServerCPU = (srv.cpu() - srv0).Seconds()
	res.ProxyCPU = (srv.proxyCPU() - px0).Seconds()
	res.Requests, _ = srv.proxyStats(true)
	if err != nil {
		if timedOut {
			res.Err = fmt.Sprintf("timeout after %s", env.Sizes.Timeout)
		} else {
			res.Err = firstLine(err.Error())
		}
		return res
	}
	var lr limitResult
	if err := json.Unmarshal(out, &lr); err != nil {
		res.Err = fmt.Sprintf("limit output %q: %v", out, err)
		return res
	}
	res.Wall, res.CPU, res.PeakMiB = lr.Wall, lr.CPU, float64(lr.PeakKB)/1024
	if lr.Err != "" {
		res.Err = firstLine(lr.Err)
		return res
	}
	res.Metrics = lr.Metrics
	if w.verify != nil {
		vctx, cancel := context.WithTimeout(ctx, env.Sizes.Timeout)
		defer cancel()
		if err := w.verify(vctx, env, "", direct); err != nil {
			res.Err = "verify: " + firstLine(err.Error())
		}
	}
	return res
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
