package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

const mib = 1 << 20

// sizes scale the workloads: full and quick.
type sizes struct {
	BigMiB      int           // seqread, seqread4 (each of 4), ttfb, randread object
	WriteMiB    int           // seqwrite
	SmallFiles  int           // smallfiles: count ...
	SmallKiB    int           // ... of this size
	LsObjects   int           // ls: objects below one prefix
	RereadMiB   int           // reread
	RandSeconds int           // randread, per block size
	TreeSub     string        // "" = all of $GOROOT/src, else this subdirectory of it
	Timeout     time.Duration // per workload run
}

var fullSizes = sizes{
	BigMiB: 1024, WriteMiB: 1024, SmallFiles: 1000, SmallKiB: 4, LsObjects: 10000,
	RereadMiB: 256, RandSeconds: 20, Timeout: 10 * time.Minute,
}

var quickSizes = sizes{
	BigMiB: 256, WriteMiB: 256, SmallFiles: 500, SmallKiB: 4, LsObjects: 5000,
	RereadMiB: 128, RandSeconds: 5, TreeSub: "net", Timeout: 90 * time.Second,
}

// benchEnv is everything a workload needs; it is also handed, as JSON, to
// the limit subprocess.
type benchEnv struct {
	Sizes sizes

	Run        string // .bench/run: mounts, cache dirs, logs
	Scratch    string // on the tmpfs: local source files
	Ampfs      string
	Rclone     string
	S3fsPasswd string
	Self       string
	Direct     string // versitygw, for set-up and durability checks
	Proxy      string // the counting proxy, for every measured client

	BigSrc    string // BigMiB of random bytes: source of the big objects and of seqwrite
	WriteSum  string // sha256 of the first WriteMiB of BigSrc
	SmallDir  string // SmallFiles files of SmallKiB
	TreeTar   string // tarball of the Go source tree (top directory "src")
	TreeDir   string // the same tree extracted locally (TreeDir/src/...)
	TreeFiles map[string]int64
	TreeDirs  int // directories that hold files, "src" included
}

// Buckets, one per concern, so that a workload never lists another's data.
const (
	bucketRead  = "bench-read"  // big0..big3 and mid: read-only
	bucketLs    = "bench-ls"    // ls/NNNNN: read-only
	bucketTree  = "bench-tree"  // src/...: read-only, for find
	bucketWrite = "bench-write" // seqwrite and smallfiles: emptied before each run
	bucketUntar = "bench-untar" // emptied before each run
	bucketRm    = "bench-rm"    // the tree, put again before each run of rmtree
)

// prepareLocal makes the local source files on the tmpfs.
func prepareLocal(ctx context.Context, env *benchEnv) error {
	env.BigSrc = filepath.Join(env.Scratch, "big.src")
	if err := writeRandom(env.BigSrc, int64(env.Sizes.BigMiB)*mib, 1); err != nil {
		return err
	}
	sum, err := fileSHA(env.BigSrc, int64(env.Sizes.WriteMiB)*mib)
	if err != nil {
		return err
	}
	env.WriteSum = sum

	env.SmallDir = filepath.Join(env.Scratch, "small")
	if err := os.MkdirAll(env.SmallDir, 0o755); err != nil {
		return err
	}
	for i := range env.Sizes.SmallFiles {
		if err := writeRandom(filepath.Join(env.SmallDir, fmt.Sprintf("f%05d", i)), int64(env.Sizes.SmallKiB)<<10, uint64(i+100)); err != nil {
			return err
		}
	}

	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	src := filepath.Join(strings.TrimSpace(string(out)), "src")
	member := "src"
	if env.Sizes.TreeSub != "" {
		member = "src/" + env.Sizes.TreeSub
	}
	env.TreeTar = filepath.Join(env.Scratch, "tree.tar")
	env.TreeDir = filepath.Join(env.Scratch, "tree")
	if _, _, err := runCmd(ctx, "tar", "-C", filepath.Dir(src), "-cf", env.TreeTar, member); err != nil {
		return err
	}
	if err := os.MkdirAll(env.TreeDir, 0o755); err != nil {
		return err
	}
	if _, _, err := runCmd(ctx, "tar", "--no-same-owner", "-C", env.TreeDir, "-xf", env.TreeTar); err != nil {
		return err
	}
	env.TreeFiles = map[string]int64{}
	dirs := map[string]bool{}
	err = filepath.WalkDir(env.TreeDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(env.TreeDir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		env.TreeFiles[filepath.ToSlash(rel)] = info.Size()
		for dir := filepath.Dir(rel); dir != "."; dir = filepath.Dir(dir) {
			dirs[dir] = true
		}
		return nil
	})
	env.TreeDirs = len(dirs)
	return err
}

func writeRandom(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 'a', 'm', 'p'})
	buf := make([]byte, min(size, 4*mib))
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		_, _ = r.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}

func fileSHA(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, n)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// treeFiles maps each key of the tree to its local file.
func (env *benchEnv) treeFiles() map[string]string {
	m := make(map[string]string, len(env.TreeFiles))
	for k := range env.TreeFiles {
		m[k] = filepath.Join(env.TreeDir, filepath.FromSlash(k))
	}
	return m
}

func (env *benchEnv) smallFiles(prefix string) map[string]string {
	m := map[string]string{}
	for i := range env.Sizes.SmallFiles {
		name := fmt.Sprintf("f%05d", i)
		m[prefix+name] = filepath.Join(env.SmallDir, name)
	}
	return m
}

// seedServer creates the buckets and the read-only data, through S3
// directly (not through the proxy, so the counters start clean).
func seedServer(ctx context.Context, env *benchEnv, c *s3.Client) error {
	for _, b := range []string{bucketRead, bucketLs, bucketTree, bucketWrite, bucketUntar, bucketRm} {
		if err := createBucket(ctx, c, b); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	big := int64(env.Sizes.BigMiB) * mib
	g, gctx := errgroup.WithContext(ctx)
	for i := range 4 {
		g.Go(func() error {
			return putSection(gctx, c, bucketRead, fmt.Sprintf("big%d", i), env.BigSrc, big)
		})
	}
	g.Go(func() error {
		return putSection(gctx, c, bucketRead, "mid", env.BigSrc, int64(env.Sizes.RereadMiB)*mib)
	})
	if err := g.Wait(); err != nil {
		return err
	}
	empty := filepath.Join(env.Scratch, "lsobj")
	if err := os.WriteFile(empty, []byte("ampfs bench\n"), 0o644); err != nil {
		return err
	}
	ls := map[string]string{}
	for i := range env.Sizes.LsObjects {
		ls[fmt.Sprintf("ls/obj%05d", i)] = empty
	}
	if err := putFiles(ctx, c, bucketLs, ls, 32); err != nil {
		return err
	}
	return putFiles(ctx, c, bucketTree, env.treeFiles(), 32)
}

func putSection(ctx context.Context, c *s3.Client, bucket, key, path string, n int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key),
		Body: io.NewSectionReader(f, 0, n), ContentLength: aws.Int64(n),
	})
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	return nil
}

// waitObjects polls S3 directly until every expected key exists with its
// size: the end of a write workload's timed phase ("timed until durable").
func waitObjects(ctx context.Context, c *s3.Client, bucket, prefix string, want map[string]int64) error {
	var last string
	for {
		objs, err := listAll(ctx, c, bucket, prefix)
		if err == nil {
			got := make(map[string]int64, len(objs))
			for _, o := range objs {
				got[o.Key] = o.Size
			}
			missing := 0
			for k, size := range want {
				if s, ok := got[k]; !ok || s != size {
					missing++
					if missing == 1 {
						last = fmt.Sprintf("%s (have size %d ok=%v, want %d)", k, s, ok, size)
					}
				}
			}
			if missing == 0 {
				return nil
			}
			last = fmt.Sprintf("%d of %d objects not durable yet, e.g. %s", missing, len(want), last)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not durable: %s: %w", last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitGone polls S3 directly until nothing is left below prefix.
func waitGone(ctx context.Context, c *s3.Client, bucket, prefix string) error {
	for {
		objs, err := listAll(ctx, c, bucket, prefix)
		if err == nil && len(objs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d objects still below %s/%s: %w", len(objs), bucket, prefix, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// verifyObjects compares each object's content on the server with its local
// file (sha256 of both).
func verifyObjects(ctx context.Context, c *s3.Client, bucket string, files map[string]string) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for key, path := range files {
		g.Go(func() error {
			want, err := fileSHA(path, 1<<62)
			if err != nil {
				return err
			}
			got, err := objectSHA(ctx, c, bucket, key)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s/%s: content differs from %s", bucket, key, path)
			}
			return nil
		})
	}
	return g.Wait()
}

func objectSHA(ctx context.Context, c *s3.Client, bucket, key string) (string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", fmt.Errorf("get %s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, out.Body); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
