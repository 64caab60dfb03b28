package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// Credentials of versitygw's root account, used by every client.
const (
	accessKey = "ampfs-bench-access"
	secretKey = "ampfs-bench-secret-key-0123456789"
	region    = "us-east-1"
)

// mountTmpfs mounts a private tmpfs at dir (for the server's data and the
// local source files), so the disk is not what is measured.
func mountTmpfs(dir string, sizeGiB int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if m, _ := mountsUnder(dir); m[dir] != "" {
		return fmt.Errorf("%s is already a mount (%s): a previous bench left it; umount it first", dir, m[dir])
	}
	opts := fmt.Sprintf("size=%dg,mode=0755", sizeGiB)
	if err := syscall.Mount("ampfs-bench", dir, "tmpfs", 0, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	// versitygw's posix backend keeps object metadata in user xattrs.
	probe := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		return err
	}
	defer os.Remove(probe)
	if err := syscall.Setxattr(probe, "user.bench", []byte("1"), 0); err != nil {
		return fmt.Errorf("tmpfs at %s has no user xattrs (%v): versitygw needs them; use a kernel >= 6.6 or run versitygw with --sidecar", dir, err)
	}
	return nil
}

// server is versitygw plus the counting proxy in front of it.
type server struct {
	gw    *proc
	proxy *proc

	direct string // versitygw itself: data set-up and durability checks
	viaPx  string // the counting proxy: every file system and the limit row
	logf   *os.File
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startServer(ctx context.Context, gwBin, dataDir, logPath string) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	s := &server{direct: "http://" + addr, logf: logf}
	cmd := exec.Command(gwBin, "--access", accessKey, "--secret", secretKey,
		"--region", region, "--port", addr, "--quiet", "posix", dataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if s.gw, err = startProc("versitygw", cmd); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if s.gw.exited() || time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("versitygw did not start (see %s)", logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}

	self, err := os.Executable()
	if err != nil {
		s.stop()
		return nil, err
	}
	pcmd := exec.Command(self, "proxy", s.direct)
	pcmd.Stderr = logf
	out, err := pcmd.StdoutPipe()
	if err != nil {
		s.stop()
		return nil, err
	}
	if s.proxy, err = startProc("proxy", pcmd); err != nil {
		s.stop()
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("proxy did not start: %v", err)
	}
	s.viaPx = strings.TrimSpace(line)
	return s, nil
}

func (s *server) stop() {
	if s.proxy != nil {
		s.proxy.stop(5 * time.Second)
	}
	if s.gw != nil {
		s.gw.stop(10 * time.Second)
	}
	if s.logf != nil {
		s.logf.Close()
	}
}

// proxyStats returns the counters since the last reset, and resets them
// when reset is true.
func (s *server) proxyStats(reset bool) (reqStats, error) {
	u := s.viaPx + statsPath
	if reset {
		u += "?reset=1"
	}
	resp, err := http.Get(u)
	if err != nil {
		return reqStats{}, err
	}
	defer resp.Body.Close()
	var st reqStats
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func (s *server) cpu() time.Duration {
	st, err := readProcStat(s.gw.pid())
	if err != nil {
		return 0
	}
	return st.CPU
}

func (s *server) proxyCPU() time.Duration {
	st, err := readProcStat(s.proxy.pid())
	if err != nil {
		return 0
	}
	return st.CPU
}

// newClient is an S3 client for endpoint, tuned like ampfs's own (many idle
// connections, checksums only where S3 requires them).
func newClient(endpoint string) *s3.Client {
	tr := &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return s3.New(s3.Options{
		Region:                     region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		HTTPClient:                 &http.Client{Transport: tr},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func createBucket(ctx context.Context, c *s3.Client, bucket string) error {
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if errors.As(err, &owned) {
		return nil
	}
	return err
}

// objInfo is one listed object.
type objInfo struct {
	Key  string
	Size int64
}

// listAll lists every object below prefix (no delimiter).
func listAll(ctx context.Context, c *s3.Client, bucket, prefix string) ([]objInfo, error) {
	var out []objInfo
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			out = append(out, objInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

// emptyBucket deletes every object and aborts every multipart upload in bucket.
func emptyBucket(ctx context.Context, c *s3.Client, bucket string) error {
	if err := deleteAll(ctx, c, bucket, ""); err != nil {
		return err
	}
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		return err
	}
	for _, u := range ups.Uploads {
		_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(bucket), Key: u.Key, UploadId: u.UploadId,
		})
	}
	left, err := listAll(ctx, c, bucket, "")
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("emptying %s: %d objects left (first %q)", bucket, len(left), left[0].Key)
	}
	return nil
}

// deleteAll lists everything below prefix and deletes it, 1,000 keys per
// request.
func deleteAll(ctx context.Context, c *s3.Client, bucket, prefix string) error {
	objs, err := listAll(ctx, c, bucket, prefix)
	if err != nil {
		return err
	}
	for len(objs) > 0 {
		n := min(len(objs), 1000)
		ids := make([]types.ObjectIdentifier, n)
		for i, o := range objs[:n] {
			ids[i] = types.ObjectIdentifier{Key: aws.String(o.Key)}
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return err
		}
		if len(out.Errors) > 0 {
			return fmt.Errorf("emptying %s: %s: %s", bucket, aws.ToString(out.Errors[0].Key), aws.ToString(out.Errors[0].Message))
		}
		objs = objs[n:]
	}
	return nil
}

// putFiles uploads local files (key -> path) with the given concurrency.
func putFiles(ctx context.Context, c *s3.Client, bucket string, files map[string]string, conc int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for key, path := range files {
		g.Go(func() error {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: f})
			if err != nil {
				return fmt.Errorf("put %s: %w", key, err)
			}
			return nil
		})
	}
	return g.Wait()
}
