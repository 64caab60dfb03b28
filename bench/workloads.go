package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// metric is one row of the table.
type metric struct {
	key    string
	label  string
	higher bool // true: more is better (MiB/s, IOPS); false: less is better (ms)
}

// workload is one thing a user does, done through a mount (onFS) and the
// same transfers done directly with the SDK (onSDK, the limit row).
//
// The timed phase is onFS/onSDK; for writes it lasts until S3 itself shows
// the data (polled directly, not through the proxy), so an asynchronous
// uploader does not look faster than it is. verify runs after the timed
// phase and turns the run into FAIL when the data is wrong.
type workload struct {
	name    string
	bucket  string
	metrics []metric
	// prep runs before each mount, directly against S3 (not counted).
	prep func(ctx context.Context, env *benchEnv, c *s3.Client) error
	// onFS does the work at mnt (the bucket's root); c reaches S3 directly.
	onFS func(ctx context.Context, env *benchEnv, mnt string, c *s3.Client) (map[string]float64, error)
	// onSDK does the same transfers with client (through the proxy).
	onSDK func(ctx context.Context, env *benchEnv, client *s3.Client) (map[string]float64, error)
	// verify checks the result (mnt is "" for the limit row).
	verify func(ctx context.Context, env *benchEnv, mnt string, c *s3.Client) error
}

func mibps(bytes int64, d time.Duration) float64 {
	return float64(bytes) / mib / d.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

var ddBytes = regexp.MustCompile(`(?m)^(\d+) bytes`)

// ddRead reads path with `dd bs=1M` and returns the bytes dd copied.
func ddRead(ctx context.Context, path string) (int64, error) {
	_, stderr, err := runCmd(ctx, "dd", "if="+path, "of=/dev/null", "bs=1M")
	if err != nil {
		return 0, err
	}
	m := ddBytes.FindSubmatch(stderr)
	if m == nil {
		return 0, fmt.Errorf("dd: no byte count in %q", stderr)
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

func readWorkload(name, key string, sizeMiB func(sizes) int) workload {
	return workload{
		name:    name,
		bucket:  bucketRead,
		metrics: []metric{{"mibps", name + " (MiB/s)", true}},
		onFS: func(ctx context.Context, env *benchEnv, mnt string, _ *s3.Client) (map[string]float64, error) {
			want := int64(sizeMiB(env.Sizes)) * mib
			t0 := time.Now()
			n, err := ddRead(ctx, filepath.Join(mnt, key))
			el := time.Since(t0)
			if err != nil {
				return nil, err
			}
			if n != want {
				return nil, fmt.Errorf("dd read %d bytes, want %d", n, want)
			}
			return map[string]float64{"mibps": mibps(n, el)}, nil
		},
		onSDK: func(ctx context.Context, env *benchEnv, c *s3.Client) (map[string]float64, error) {
			t0 := time.Now()
			n, err := sdkGetAll(ctx, c, bucketRead, key)
			if err != nil {
				return nil, err
			}
			return map[string]float64{"mibps": mibps(n, time.Since(t0))}, nil
		},
	}
}

func workloads() []workload {
	return []workload{
		readWorkload("seqread", "big0", func(s sizes) int { return s.BigMiB }),
		{
			name:    "seqread4",
			bucket:  bucketRead,
			metrics: []metric{{"mibps", "seqread4 (MiB/s, 4 files at once)", true}},
			onFS: func(ctx context.Context, env *benchEnv, mnt string, _ *s3.Client) (map[string]float64, error) {
				want := int64(env.Sizes.BigMiB) * mib
				var wg sync.WaitGroup
				errs := make([]error, 4)
				t0 := time.Now()
				for i := range 4 {
					wg.Go(func() {
						n, err := ddRead(ctx, filepath.Join(mnt, fmt.Sprintf("big%d", i)))
						if err == nil && n != want {
							err = fmt.Errorf("dd read %d bytes of big%d, want %d", n, i, want)
						}
						errs[i] = err
					})
				}
				wg.Wait()
				el := time.Since(t0)
				for _, err := range errs {
					if err != nil {
						return nil, err
					}
				}
				return map[string]float64{"mibps": mibps(4*want, el)}, nil
			},
			onSDK: sdkSeqread4,
		},
		randreadWorkload("randread-4k", 4<<10),
		randreadWorkload("randread-256k", 256<<10),
		{
			name:    "ttfb",
			bucket:  bucketRead,
			metrics: []metric{{"ms", "ttfb (ms, first byte of a big object)", false}},
			onFS: func(ctx context.Context, env *benchEnv, mnt string, _ *s3.Client) (map[string]float64, error) {
				out, _, err := runCmd(ctx, env.Self, "ttfb", filepath.Join(mnt, "big0"))
				if err != nil {
					return nil, err
				}
				ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("ttfb helper: %q", out)
				}
				return map[string]float64{"ms": ms(time.Duration(ns))}, nil
			},
			onSDK: sdkTTFB,
		},
		{
			name:    "seqwrite",
			bucket:  bucketWrite,
			metrics: []metric{{"mibps", "seqwrite (MiB/s, until durable)", true}},
			prep:    func(ctx context.Context, _ *benchEnv, c *s3.Client) error { return emptyBucket(ctx, c, bucketWrite) },
			onFS: func(ctx context.Context, env *benchEnv, mnt string, c *s3.Client) (map[string]float64, error) {
				n := int64(env.Sizes.WriteMiB) * mib
				t0 := time.Now()
				if _, _, err := runCmd(ctx, "dd", "if="+env.BigSrc, "of="+filepath.Join(mnt, "seqwrite.bin"),
					"bs=1M", fmt.Sprintf("count=%d", env.Sizes.WriteMiB)); err != nil {
					return nil, err
				}
				if err := waitObjects(ctx, c, bucketWrite, "seqwrite.bin", map[string]int64{"seqwrite.bin": n}); err != nil {
					return nil, err
				}
				return map[string]float64{"mibps": mibps(n, time.Since(t0))}, nil
			},
			onSDK: sdkSeqwrite,
			verify: func(ctx context.Context, env *benchEnv, _ string, c *s3.Client) error {
				got, err := objectSHA(ctx, c, bucketWrite, "seqwrite.bin")
				if err != nil {
					return err
				}
				if got != env.WriteSum {
					return fmt.Errorf("seqwrite.bin: checksum differs")
				}
				return nil
			},
		},
		{
			// Four large writers at once: the write-back's memory bound
			// (peak RSS in the cost table) and its throughput.
			name:    "seqwrite4",
			bucket:  bucketWrite,
			metrics: []metric{{"mibps", "seqwrite4 (MiB/s, 4 files at once, until durable)", true}},
			prep:    func(ctx context.Context, _ *benchEnv, c *s3.Client) error { return emptyBucket(ctx, c, bucketWrite) },
			onFS: func(ctx context.Context, env *benchEnv, mnt string, c *s3.Client) (map[string]float64, error) {
				n := int64(env.Sizes.WriteMiB) * mib
				want := map[string]int64{}
				var wg sync.WaitGroup
				errs := make([]error, 4)
				t0 := time.Now()
				for i := range 4 {
					name := fmt.Sprintf("seqwrite%d.bin", i)
					want[name] = n
					wg.Go(func() {
						_, _, errs[i] = runCmd(ctx, "dd", "if="+env.BigSrc, "of="+filepath.Join(mnt, name),
							"bs=1M", fmt.Sprintf("count=%d", env.Sizes.WriteMiB))
					})
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						return nil, err
					}
				}
				if err := waitObjects(ctx, c, bucketWrite, "seqwrite", want); err != nil {
					return nil, err
				}
				return map[string]float64{"mibps": mibps(4*n, time.Since(t0))}, nil
			},
			onSDK: sdkSeqwrite4,
			verify: func(ctx context.Context, env *benchEnv, _ string, c *s3.Client) error {
				for i := range 4 {
					name := fmt.Sprintf("seqwrite%d.bin", i)
					got, err := objectSHA(ctx, c, bucketWrite, name)
					if err != nil {
						return err
					}
					if got != env.WriteSum {
						return fmt.Errorf("%s: checksum differs", name)
					}
				}
				return nil
			},
		},
		{
			name:    "smallfiles",
			bucket:  bucketWrite,
			metrics: []metric{{"s", "smallfiles (s, cp -r until durable)", false}, {"fps", "smallfiles (files/s)", true}},
			prep:    func(ctx context.Context, _ *benchEnv, c *s3.Client) error { return emptyBucket(ctx, c, bucketWrite) },
			onFS: func(ctx context.Context, env *benchEnv, mnt string, c *s3.Client) (map[string]float64, error) {
				want := map[string]int64{}
				for k := range env.smallFiles("small/") {
					want[k] = int64(env.Sizes.SmallKiB) << 10
				}
				t0 := time.Now()
				if _, _, err := runCmd(ctx, "cp", "-r", env.SmallDir, filepath.Join(mnt, "small")); err != nil {
					return nil, err
				}
				if err := waitObjects(ctx, c, bucketWrite, "small/", want); err != nil {
					return nil, err
				}
				el := time.Since(t0)
				return map[string]float64{"s": el.Seconds(), "fps": float64(len(want)) / el.Seconds()}, nil
			},
			onSDK: sdkSmallfiles,
			verify: func(ctx context.Context, env *benchEnv, _ string, c *s3.Client) error {
				return verifyObjects(ctx, c, bucketWrite, env.smallFiles("small/"))
			},
		},
		{
			name:    "untar",
			bucket:  bucketUntar,
			metrics: []metric{{"s", "untar (s, until durable)", false}},
			prep:    func(ctx context.Context, _ *benchEnv, c *s3.Client) error { return emptyBucket(ctx, c, bucketUntar) },
			onFS: func(ctx context.Context, env *benchEnv, mnt string, c *s3.Client) (map[string]float64, error) {
				t0 := time.Now()
				if _, _, err := runCmd(ctx, "tar", "--no-same-owner", "-C", mnt, "-xf", env.TreeTar); err != nil {
					return nil, err
				}
				if err := waitObjects(ctx, c, bucketUntar, "src/", env.TreeFiles); err != nil {
					return nil, err
				}
				return map[string]float64{"s": time.Since(t0).Seconds()}, nil
			},
			onSDK: sdkUntar,
			verify: func(ctx context.Context, env *benchEnv, mnt string, c *s3.Client) error {
				if mnt != "" {
					if _, _, err := runCmd(ctx, "diff", "-r", filepath.Join(env.TreeDir, "src"), filepath.Join(mnt, "src")); err != nil {
						return fmt.Errorf("diff -r against the local tree: %w", err)
					}
				}
				return verifyObjects(ctx, c, bucketUntar, env.treeFiles())
			},
		},
		lsWorkload("ls-f", "-f", 2),
		lsWorkload("ls-l", "-l", 1),
		{
			name:    "find",
			bucket:  bucketTree,
			metrics: []metric{{"ms", "find (ms, find of the tree, cold)", false}},
			onFS: func(ctx context.Context, env *benchEnv, mnt string, _ *s3.Client) (map[string]float64, error) {
				t0 := time.Now()
				out, _, err := runCmd(ctx, "find", filepath.Join(mnt, "src"))
				el := time.Since(t0)
				if err != nil {
					return nil, err
				}
				got := bytes.Count(out, []byte("\n"))
				if want := len(env.TreeFiles) + env.TreeDirs; got != want {
					return nil, fmt.Errorf("find listed %d entries, want %d", got, want)
				}
				return map[string]float64{"ms": ms(el)}, nil
			},
			onSDK: sdkFind,
		},
		{
			name:   "reread",
			bucket: bucketRead,
			metrics: []metric{{"mibps2", "reread (MiB/s, 2nd pass, page cache dropped)", true}, {"mibps1", "reread (MiB/s, 1st pass)", true},
				{"tmpfs", "reread (MiB/s, the same bytes read from tmpfs: issue 6's reference, not the file system)", true}},
			onFS: func(ctx context.Context, env *benchEnv, mnt string, _ *s3.Client) (map[string]float64, error) {
				want := int64(env.Sizes.RereadMiB) * mib
				res := map[string]float64{}
				for pass := 1; pass <= 2; pass++ {
					if pass == 2 {
						if err := dropCaches(); err != nil {
							return nil, err
						}
					}
					t0 := time.Now()
					n, err := ddRead(ctx, filepath.Join(mnt, "mid"))
					el := time.Since(t0)
					if err != nil {
						return nil, err
					}
					if n != want {
						return nil, fmt.Errorf("pass %d: dd read %d bytes, want %d", pass, n, want)
					}
					res[fmt.Sprintf("mibps%d", pass)] = mibps(n, el)
				}
				// The reference of issue 6's target (a cached file reads at
				// ≥ 0.8 × tmpfs): the same number of bytes of the object's
				// local source, which lives on the bench's tmpfs.
				t0 := time.Now()
				_, stderr, err := runCmd(ctx, "dd", "if="+env.BigSrc, "of=/dev/null", "bs=1M", fmt.Sprintf("count=%d", env.Sizes.RereadMiB))
				el := time.Since(t0)
				if err != nil {
					return nil, err
				}
				if m := ddBytes.FindSubmatch(stderr); m == nil || string(m[1]) != strconv.FormatInt(want, 10) {
					return nil, fmt.Errorf("dd of the tmpfs source: %q, want %d bytes", stderr, want)
				}
				res["tmpfs"] = mibps(want, el)
				return res, nil
			},
			onSDK: sdkReread,
		},
		{
			name:    "rmtree",
			bucket:  bucketRm,
			metrics: []metric{{"s", "rmtree (s, rm -rf of the tree until gone)", false}},
			prep: func(ctx context.Context, env *benchEnv, c *s3.Client) error {
				if err := emptyBucket(ctx, c, bucketRm); err != nil {
					return err
				}
				return putFiles(ctx, c, bucketRm, env.treeFiles(), 32)
			},
			onFS: func(ctx context.Context, env *benchEnv, mnt string, c *s3.Client) (map[string]float64, error) {
				t0 := time.Now()
				if _, _, err := runCmd(ctx, "rm", "-rf", filepath.Join(mnt, "src")); err != nil {
					return nil, err
				}
				if err := waitGone(ctx, c, bucketRm, "src/"); err != nil {
					return nil, err
				}
				return map[string]float64{"s": time.Since(t0).Seconds()}, nil
			},
			onSDK: sdkRmtree,
			verify: func(ctx context.Context, _ *benchEnv, mnt string, c *s3.Client) error {
				if mnt != "" {
					if _, err := os.Lstat(filepath.Join(mnt, "src")); err == nil {
						return fmt.Errorf("src still shows in the mount after rm -rf")
					}
				}
				return nil
			},
		},
	}
}

func randreadWorkload(name string, bs int) workload {
	label := strings.TrimPrefix(name, "randread-")
	return workload{
		name:   name,
		bucket: bucketRead,
		metrics: []metric{
			{"iops", fmt.Sprintf("randread %s (IOPS)", label), true},
			{"p99", fmt.Sprintf("randread %s (p99 ms)", label), false},
		},
		onFS: func(ctx context.Context, env *benchEnv, mnt string, _ *s3.Client) (map[string]float64, error) {
			out, _, err := runCmd(ctx, "fio", "--name=randread", "--filename="+filepath.Join(mnt, "big0"),
				"--readonly", "--rw=randread", fmt.Sprintf("--bs=%d", bs), "--ioengine=psync",
				"--iodepth=1", "--numjobs=1", "--time_based", fmt.Sprintf("--runtime=%ds", env.Sizes.RandSeconds),
				fmt.Sprintf("--size=%d", int64(env.Sizes.BigMiB)*mib), "--invalidate=1", "--output-format=json")
			if err != nil {
				return nil, err
			}
			return parseFio(out)
		},
		onSDK: func(ctx context.Context, env *benchEnv, c *s3.Client) (map[string]float64, error) {
			return sdkRandread(ctx, env, c, bs)
		},
	}
}

func parseFio(out []byte) (map[string]float64, error) {
	// fio may print warnings before the JSON document.
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	var doc struct {
		Jobs []struct {
			Error int `json:"error"`
			Read  struct {
				IOPS     float64 `json:"iops"`
				TotalIOs int64   `json:"total_ios"`
				ClatNs   struct {
					Percentile map[string]float64 `json:"percentile"`
				} `json:"clat_ns"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("fio output: %v", err)
	}
	if len(doc.Jobs) != 1 {
		return nil, fmt.Errorf("fio: %d jobs in output", len(doc.Jobs))
	}
	j := doc.Jobs[0]
	if j.Error != 0 || j.Read.TotalIOs == 0 {
		return nil, fmt.Errorf("fio: error %d after %d reads", j.Error, j.Read.TotalIOs)
	}
	return map[string]float64{"iops": j.Read.IOPS, "p99": j.Read.ClatNs.Percentile["99.000000"] / 1e6}, nil
}

func lsWorkload(name, flag string, extra int) workload {
	return workload{
		name:    name,
		bucket:  bucketLs,
		metrics: []metric{{"ms", fmt.Sprintf("%s (ms, ls %s of a prefix, cold)", name, flag), false}},
		onFS: func(ctx context.Context, env *benchEnv, mnt string, _ *s3.Client) (map[string]float64, error) {
			t0 := time.Now()
			out, _, err := runCmd(ctx, "ls", flag, filepath.Join(mnt, "ls"))
			el := time.Since(t0)
			if err != nil {
				return nil, err
			}
			// ls -f adds . and ..; ls -l adds its "total" line.
			if got, want := bytes.Count(out, []byte("\n")), env.Sizes.LsObjects+extra; got != want {
				return nil, fmt.Errorf("ls %s printed %d lines, want %d", flag, got, want)
			}
			return map[string]float64{"ms": ms(el)}, nil
		},
		onSDK: func(ctx context.Context, env *benchEnv, c *s3.Client) (map[string]float64, error) {
			t0 := time.Now()
			n, err := sdkListDir(ctx, c, bucketLs, "ls/")
			el := time.Since(t0)
			if err != nil {
				return nil, err
			}
			if n != env.Sizes.LsObjects {
				return nil, fmt.Errorf("listed %d, want %d", n, env.Sizes.LsObjects)
			}
			return map[string]float64{"ms": ms(el)}, nil
		},
	}
}

// ttfbMain is "bench ttfb FILE": open FILE, read one byte, print the
// nanoseconds that took. It runs as a child so a hung mount can be killed.
func ttfbMain(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: bench ttfb FILE")
	}
	t0 := time.Now()
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.Read(b[:]); err != nil {
		return err
	}
	fmt.Println(time.Since(t0).Nanoseconds())
	return nil
}
