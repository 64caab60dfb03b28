package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// The limit row: the transfers a workload needs, done directly with
// aws-sdk-go-v2 through the same proxy, with the same concurrency as the
// workload's own (one stream for one dd, four for four, one request at a
// time for a sequential cp, tar or rm), and ampfs's multipart settings for
// large writes. Listings use the fewest requests that produce the result.

// Multipart settings of the limit's seqwrite: ampfs's defaults.
const (
	limitPartSize    = 8 * mib
	limitPartsInFly  = 4
	limitCopyBufSize = 1 * mib
)

func sdkGetAll(ctx context.Context, c *s3.Client, bucket, key string) (int64, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	return io.CopyBuffer(io.Discard, out.Body, make([]byte, limitCopyBufSize))
}

func sdkSeqread4(ctx context.Context, env *benchEnv, c *s3.Client) (map[string]float64, error) {
	g, gctx := errgroup.WithContext(ctx)
	var total [4]int64
	t0 := time.Now()
	for i := range 4 {
		g.Go(func() error {
			n, err := sdkGetAll(gctx, c, bucketRead, fmt.Sprintf("big%d", i))
			total[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	el := time.Since(t0)
	return map[string]float64{"mibps": mibps(total[0]+total[1]+total[2]+total[3], el)}, nil
}

func sdkRandread(ctx context.Context, env *benchEnv, c *s3.Client, bs int) (map[string]float64, error) {
	size := int64(env.Sizes.BigMiB) * mib
	blocks := size / int64(bs)
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, bs)
	var lat []time.Duration
	t0 := time.Now()
	end := t0.Add(time.Duration(env.Sizes.RandSeconds) * time.Second)
	for time.Now().Before(end) {
		off := r.Int64N(blocks) * int64(bs)
		s := time.Now()
		out, err := c.GetObject(ctx, &s3.GetObjectInput{
			Bucket: aws.String(bucketRead), Key: aws.String("big0"),
			Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(bs)-1)),
		})
		if err != nil {
			return nil, err
		}
		_, err = io.ReadFull(out.Body, buf)
		out.Body.Close()
		if err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(s))
	}
	el := time.Since(t0)
	slices.Sort(lat)
	p99 := lat[min(len(lat)-1, len(lat)*99/100)]
	return map[string]float64{"iops": float64(len(lat)) / el.Seconds(), "p99": ms(p99)}, nil
}

func sdkTTFB(ctx context.Context, _ *benchEnv, c *s3.Client) (map[string]float64, error) {
	t0 := time.Now()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucketRead), Key: aws.String("big0")})
	if err != nil {
		return nil, err
	}
	var b [1]byte
	_, err = io.ReadFull(out.Body, b[:])
	el := time.Since(t0)
	out.Body.Close()
	if err != nil {
		return nil, err
	}
	return map[string]float64{"ms": ms(el)}, nil
}

func sdkSeqwrite(ctx context.Context, env *benchEnv, c *s3.Client) (map[string]float64, error) {
	n := int64(env.Sizes.WriteMiB) * mib
	t0 := time.Now()
	if err := sdkMultipart(ctx, env, c, "seqwrite.bin"); err != nil {
		return nil, err
	}
	return map[string]float64{"mibps": mibps(n, time.Since(t0))}, nil
}

// sdkSeqwrite4 is four seqwrites at once, as four dd's into a mount.
func sdkSeqwrite4(ctx context.Context, env *benchEnv, c *s3.Client) (map[string]float64, error) {
	n := int64(env.Sizes.WriteMiB) * mib
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i := range 4 {
		g.Go(func() error { return sdkMultipart(gctx, env, c, fmt.Sprintf("seqwrite%d.bin", i)) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return map[string]float64{"mibps": mibps(4*n, time.Since(t0))}, nil
}

// sdkMultipart uploads WriteMiB of BigSrc to key, limitPartsInFly parts
// at a time.
func sdkMultipart(ctx context.Context, env *benchEnv, c *s3.Client, name string) error {
	n := int64(env.Sizes.WriteMiB) * mib
	f, err := os.Open(env.BigSrc)
	if err != nil {
		return err
	}
	defer f.Close()
	bucket, key := aws.String(bucketWrite), aws.String(name)
	cr, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key})
	if err != nil {
		return err
	}
	parts := int((n + limitPartSize - 1) / limitPartSize)
	done := make([]types.CompletedPart, parts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limitPartsInFly)
	for i := range parts {
		off := int64(i) * limitPartSize
		ln := min(limitPartSize, n-off)
		g.Go(func() error {
			// Read the part into memory first, as a file system's writer hands
			// over bytes it has, not a file the SDK may seek.
			buf := make([]byte, ln)
			if _, err := f.ReadAt(buf, off); err != nil {
				return err
			}
			out, err := c.UploadPart(gctx, &s3.UploadPartInput{
				Bucket: bucket, Key: key, UploadId: cr.UploadId,
				PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(buf), ContentLength: aws.Int64(ln),
			})
			if err != nil {
				return err
			}
			done[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		_, _ = c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: bucket, Key: key, UploadId: cr.UploadId})
		return err
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: bucket, Key: key, UploadId: cr.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	})
	return err
}

// putSequential uploads files one at a time, in name order, as cp and tar do.
func putSequential(ctx context.Context, c *s3.Client, bucket string, files map[string]string) error {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, err := os.ReadFile(files[k])
		if err != nil {
			return err
		}
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: bytes.NewReader(b)}); err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
	}
	return nil
}

func sdkSmallfiles(ctx context.Context, env *benchEnv, c *s3.Client) (map[string]float64, error) {
	files := env.smallFiles("small/")
	t0 := time.Now()
	if err := putSequential(ctx, c, bucketWrite, files); err != nil {
		return nil, err
	}
	el := time.Since(t0)
	return map[string]float64{"s": el.Seconds(), "fps": float64(len(files)) / el.Seconds()}, nil
}

// sdkUntar reads the tarball and puts each regular file as it comes.
func sdkUntar(ctx context.Context, env *benchEnv, c *s3.Client) (map[string]float64, error) {
	t0 := time.Now()
	f, err := os.Open(env.TreeTar)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		key := strings.TrimPrefix(filepath.ToSlash(filepath.Clean(h.Name)), "/")
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucketUntar), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
			return nil, fmt.Errorf("put %s: %w", key, err)
		}
	}
	return map[string]float64{"s": time.Since(t0).Seconds()}, nil
}

// sdkListDir lists one "directory" (delimiter /), all pages, as ls needs.
func sdkListDir(ctx context.Context, c *s3.Client, bucket, prefix string) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		n += len(page.Contents) + len(page.CommonPrefixes)
	}
	return n, nil
}

// sdkFind lists the whole tree flat: the fewest requests that name every path.
func sdkFind(ctx context.Context, env *benchEnv, c *s3.Client) (map[string]float64, error) {
	t0 := time.Now()
	objs, err := listAll(ctx, c, bucketTree, "src/")
	el := time.Since(t0)
	if err != nil {
		return nil, err
	}
	if len(objs) != len(env.TreeFiles) {
		return nil, fmt.Errorf("listed %d objects, want %d", len(objs), len(env.TreeFiles))
	}
	return map[string]float64{"ms": ms(el)}, nil
}

func sdkReread(ctx context.Context, env *benchEnv, c *s3.Client) (map[string]float64, error) {
	res := map[string]float64{}
	for pass := 1; pass <= 2; pass++ {
		t0 := time.Now()
		n, err := sdkGetAll(ctx, c, bucketRead, "mid")
		if err != nil {
			return nil, err
		}
		res[fmt.Sprintf("mibps%d", pass)] = mibps(n, time.Since(t0))
	}
	return res, nil
}

// sdkRmtree lists the tree and deletes it 1,000 keys per request.
func sdkRmtree(ctx context.Context, _ *benchEnv, c *s3.Client) (map[string]float64, error) {
	t0 := time.Now()
	if err := deleteAll(ctx, c, bucketRm, "src/"); err != nil {
		return nil, err
	}
	return map[string]float64{"s": time.Since(t0).Seconds()}, nil
}

// limitResult is what "bench limit" prints as JSON.
type limitResult struct {
	Metrics map[string]float64 `json:"metrics"`
	Wall    float64            `json:"wall_s"`
	CPU     float64            `json:"cpu_s"`
	PeakKB  int64              `json:"peak_kb"`
	Err     string             `json:"err,omitempty"`
}

// limitMain is "bench limit ENVFILE WORKLOAD": one limit run in its own
// process, so its CPU and peak RSS are its own, like a file system's.
func limitMain(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: bench limit ENVFILE WORKLOAD")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var env benchEnv
	if err := json.Unmarshal(b, &env); err != nil {
		return err
	}
	var w *workload
	for _, x := range workloads() {
		if x.name == args[1] {
			w = &x
		}
	}
	if w == nil {
		return fmt.Errorf("no workload %q", args[1])
	}
	c := newClient(env.Proxy)
	t0 := time.Now()
	m, err := w.onSDK(context.Background(), &env, c)
	res := limitResult{Metrics: m, Wall: time.Since(t0).Seconds()}
	if err != nil {
		res.Err = err.Error()
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.CPU = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
	}
	// Not ru_maxrss: Linux carries the forking parent's peak across
	// execve into it. VmHWM belongs to this process's own memory map.
	if st, err := readProcStat(os.Getpid()); err == nil {
		res.PeakKB = st.PeakKB
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
