package integration

// The read path through the real binary (issue 6): large files read
// sequentially, backwards and at random against their source, and what an
// `ls -l` of a large directory costs in requests.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

func TestReadPatterns(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	data := make([]byte, 48<<20+12345) // not a whole number of blocks
	rand.Read(data)
	putObject(t, srv, bucket, "big.bin", data)
	m := mountAmpfs(t, srv, bucket, "--block-size", "1MiB", "--cache-size", "16MiB") // smaller than the file: eviction runs

	t.Run("sequential cmp", func(t *testing.T) {
		src := t.TempDir() + "/src"
		os.WriteFile(src, data, 0o644)
		run(t, "cmp", src, m.path("big.bin"))
	})
	f, err := os.Open(m.path("big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check := func(off, n int) error {
		buf := make([]byte, n)
		got, err := f.ReadAt(buf, int64(off))
		want := data[off:min(off+n, len(data))]
		if got != len(want) || !bytes.Equal(buf[:got], want) {
			return fmt.Errorf("read %d at %d: got %d bytes (%v), differ", n, off, got, err)
		}
		return nil
	}
	t.Run("backwards", func(t *testing.T) {
		const step = 200 << 10
		for off := len(data) - step; off >= 0; off -= step {
			if err := check(off, step); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("random, 4 readers", func(t *testing.T) {
		var g errgroup.Group
		for i := range 4 {
			r := mrand.New(mrand.NewPCG(uint64(i), 42))
			g.Go(func() error {
				for range 300 {
					n := 1 + r.IntN(256<<10)
					if err := check(r.IntN(len(data)), n); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	})
}

// ls -l of 2,500 objects made through S3: the listing's pages and one
// lookup of the directory, no HEAD per entry; and no FUSE round trip per
// entry for the SELinux label and ACL that GNU ls asks for (ampfs answers
// ENOTSUP, after which ls stops asking).
func TestLsCostsListPagesOnly(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	c := srv.Client()
	var g errgroup.Group
	g.SetLimit(16)
	for i := range 2500 {
		g.Go(func() error {
			_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket),
				Key: aws.String(fmt.Sprintf("many/f%05d", i)), Body: strings.NewReader("x")})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	proxy := srv.CountingProxy(t)
	// A TTL long enough that the directory's own entry does not expire in
	// the kernel while a -race build lists it (each re-lookup of "many"
	// costs a HEAD and a LIST): this test counts the per-entry costs.
	// --debug-fuse logs every FUSE request, so the test counts the
	// GETXATTRs that reach ampfs.
	m := mountAmpfs(t, srv.Via(proxy.Endpoint), bucket, "--metadata-ttl", "20s", "--log-level", "debug", "--debug-fuse")
	proxy.Reset()
	before := strings.Count(m.log(), "GETXATTR")
	out := run(t, "ls", "-l", m.path("many"))
	if n := strings.Count(m.log(), "GETXATTR") - before; n > 8 {
		t.Errorf("ls -l of 2,500 objects sent %d GETXATTR requests to ampfs; want a few (ls stops after ENOTSUP)", n)
	}
	if n := strings.Count(out, "\n-rw"); n != 2500 {
		t.Fatalf("ls -l shows %d files", n)
	}
	counts := proxy.Counts()
	t.Logf("ls -l of 2,500 objects: %v", counts)
	// The directory's own lookup is one HEAD ("many" as a file) and one
	// LIST; the listing is 3 pages of 1,000.
	if counts["HeadObject"] > 1 || counts["ListObjectsV2"] > 4 || counts["GetObject"]+counts["GetObject(range)"] > 0 {
		t.Errorf("ls -l of 2,500 objects cost %v; want ≤ 4 LIST and only the directory's own HEAD", counts)
	}
}
