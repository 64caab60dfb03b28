package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestMkdirRmdir: mkdir writes a dir/ marker, rmdir refuses a non-empty
// directory with ENOTEMPTY (marker or implicit prefix) and removes the
// marker of an empty one.
func TestMkdirRmdir(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket)

	run(t, "mkdir", m.path("d"))
	if headObject(t, srv, bucket, "d/") == nil {
		t.Fatalf("mkdir d: no marker object d/; keys: %q", listKeys(t, srv, bucket, ""))
	}
	run(t, "mkdir", "-p", m.path("p/q/r"))
	if headObject(t, srv, bucket, "p/q/r/") == nil {
		t.Errorf("mkdir -p p/q/r: no marker object p/q/r/; keys: %q", listKeys(t, srv, bucket, ""))
	}
	if out := run(t, "ls", "-ld", m.path("d")); !strings.HasPrefix(out, "d") {
		t.Errorf("ls -ld d = %q; want a directory", out)
	}

	local := filepath.Join(t.TempDir(), "f")
	writeRandom(t, local, 10)
	run(t, "cp", local, m.path("d/f"))
	if out, err := runErr(t, "rmdir", m.path("d")); err == nil || !strings.Contains(out, "Directory not empty") {
		t.Errorf("rmdir of non-empty d: err %v, output %q; want failure with \"Directory not empty\"", err, out)
	}
	if headObject(t, srv, bucket, "d/f") == nil || headObject(t, srv, bucket, "d/") == nil {
		t.Errorf("failed rmdir changed the bucket: keys %q", listKeys(t, srv, bucket, ""))
	}

	// A directory that exists only as a prefix of an object.
	putObject(t, srv, bucket, "implicit/x", []byte("x"))
	eventually(t, cacheTTL, func() error {
		_, err := os.Stat(m.path("implicit/x"))
		return err
	})
	if out, err := runErr(t, "rmdir", m.path("implicit")); err == nil || !strings.Contains(out, "Directory not empty") {
		t.Errorf("rmdir of implicit non-empty dir: err %v, output %q; want \"Directory not empty\"", err, out)
	}

	run(t, "rm", m.path("d/f"))
	run(t, "rmdir", m.path("d"))
	if keys := listKeys(t, srv, bucket, "d/"); len(keys) != 0 {
		t.Errorf("after rm d/f and rmdir d, keys under d/: %q; want none", keys)
	}
	if _, err := os.Stat(m.path("d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat d after rmdir: %v; want not exist", err)
	}
	run(t, "rmdir", m.path("p/q/r"), m.path("p/q"), m.path("p"))
	if keys := listKeys(t, srv, bucket, "p/"); len(keys) != 0 {
		t.Errorf("after rmdir p/q/r p/q p, keys under p/: %q; want none", keys)
	}
}

// TestRename: mv of a file renames the object, in the same directory and
// into another one.
func TestRename(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket)
	local := filepath.Join(t.TempDir(), "f")
	sum := writeRandom(t, local, 100_000)

	run(t, "cp", local, m.path("old.bin"))
	run(t, "mv", m.path("old.bin"), m.path("new.bin"))
	if headObject(t, srv, bucket, "old.bin") != nil {
		t.Errorf("after mv old.bin new.bin: old.bin still in S3")
	}
	if got, n := objectSHA256(t, srv, bucket, "new.bin"); got != sum {
		t.Errorf("new.bin in S3: %d bytes sha256 %s, want %s", n, got, sum)
	}

	run(t, "mkdir", m.path("sub"))
	run(t, "mv", m.path("new.bin"), m.path("sub/moved.bin"))
	if headObject(t, srv, bucket, "new.bin") != nil {
		t.Errorf("after mv new.bin sub/moved.bin: new.bin still in S3")
	}
	if got, n := objectSHA256(t, srv, bucket, "sub/moved.bin"); got != sum {
		t.Errorf("sub/moved.bin in S3: %d bytes sha256 %s, want %s", n, got, sum)
	}
	run(t, "cmp", local, m.path("sub/moved.bin"))
	names, err := lsNames(t, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"sub"}; !slices.Equal(names, want) {
		t.Errorf("ls after the renames: %q, want %q", names, want)
	}

	// mv onto an existing file replaces it.
	other := filepath.Join(t.TempDir(), "other")
	writeRandom(t, other, 10)
	run(t, "cp", other, m.path("sub/target"))
	run(t, "mv", m.path("sub/moved.bin"), m.path("sub/target"))
	if got, _ := objectSHA256(t, srv, bucket, "sub/target"); got != sum {
		t.Errorf("mv onto an existing file: target has sha256 %s, want %s", got, sum)
	}
	if keys := listKeys(t, srv, bucket, ""); !slices.Equal(keys, []string{"sub/", "sub/target"}) {
		t.Errorf("keys after mv onto an existing file: %q", keys)
	}
}

// TestRemove: rm deletes the object.
func TestRemove(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket)
	local := filepath.Join(t.TempDir(), "f")
	writeRandom(t, local, 1000)

	run(t, "cp", local, m.path("gone.bin"))
	run(t, "cp", local, m.path("kept.bin"))
	run(t, "rm", m.path("gone.bin"))
	if headObject(t, srv, bucket, "gone.bin") != nil {
		t.Errorf("rm gone.bin: object still in S3")
	}
	if keys := listKeys(t, srv, bucket, ""); !slices.Equal(keys, []string{"kept.bin"}) {
		t.Errorf("keys after rm: %q, want [kept.bin]", keys)
	}
	if _, err := os.Stat(m.path("gone.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat gone.bin after rm: %v; want not exist", err)
	}
	if out, err := runErr(t, "rm", m.path("gone.bin")); err == nil || !strings.Contains(out, "No such file") {
		t.Errorf("rm of a missing file: err %v, output %q; want \"No such file\"", err, out)
	}
}

// TestWrittenThroughS3 is the other direction: objects put and deleted
// through the S3 API show in the mount within the cache TTL.
func TestWrittenThroughS3(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket)
	// Look first, so a cached (empty) listing exists and must expire.
	if names, err := lsNames(t, m.dir); err != nil || len(names) != 0 {
		t.Fatalf("ls of the empty bucket: %q, %v", names, err)
	}

	body := []byte("written through S3\n")
	putObject(t, srv, bucket, "from-s3.txt", body)
	putObject(t, srv, bucket, "deep/er/nested.txt", body)
	eventually(t, cacheTTL, func() error {
		out, err := runErr(t, "ls", "-l", m.dir)
		if err != nil || !strings.Contains(out, "from-s3.txt") || !strings.Contains(out, "deep") {
			return fmt.Errorf("ls -l: %v: %q; want from-s3.txt and deep", err, out)
		}
		return nil
	})
	for _, rel := range []string{"from-s3.txt", "deep/er/nested.txt"} {
		if out := run(t, "cat", m.path(rel)); out != string(body) {
			t.Errorf("cat %s = %q, want %q", rel, out, body)
		}
	}

	// Overwritten through S3: the new bytes, never the old ones cached.
	body2 := []byte("overwritten, and longer than before\n")
	putObject(t, srv, bucket, "from-s3.txt", body2)
	eventually(t, cacheTTL, func() error {
		out, err := runErr(t, "cat", m.path("from-s3.txt"))
		if err != nil || out != string(body2) {
			return fmt.Errorf("cat from-s3.txt: %v: %q; want %q", err, out, body2)
		}
		return nil
	})

	deleteObject(t, srv, bucket, "from-s3.txt")
	eventually(t, cacheTTL, func() error {
		names, err := lsNames(t, m.dir)
		if err != nil {
			return err
		}
		if slices.Contains(names, "from-s3.txt") {
			return fmt.Errorf("ls still shows from-s3.txt: %q", names)
		}
		if _, err := os.Stat(m.path("from-s3.txt")); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("stat from-s3.txt: %v, want not exist", err)
		}
		return nil
	})
}

// TestLargeDirectory lists a directory of more than one ListObjectsV2 page
// (1000 keys).
func TestLargeDirectory(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	const n = 1100
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("f%04d", i))
	}
	var wg sync.WaitGroup
	next := make(chan string)
	for range 8 {
		wg.Go(func() {
			c := srv.Client()
			for name := range next {
				_, err := c.PutObject(s3ctx(t), &s3.PutObjectInput{
					Bucket: aws.String(bucket), Key: aws.String("many/" + name), Body: strings.NewReader(name),
				})
				if err != nil {
					t.Errorf("PutObject many/%s: %v", name, err)
				}
			}
		})
	}
	for _, name := range want {
		next <- name
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	m := mountAmpfs(t, srv, bucket)
	names, err := lsNames(t, m.path("many"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	if !slices.Equal(names, want) {
		t.Errorf("ls many: %d names, want %d (first %q, last %q)", len(names), n, first(names), last(names))
	}
	out := run(t, "ls", "-l", m.path("many"))
	if lines := strings.Count(out, "\n-"); lines != n {
		t.Errorf("ls -l many: %d regular files, want %d", lines, n)
	}
	if got := run(t, "cat", m.path("many/f1099")); got != "f1099" {
		t.Errorf("cat many/f1099 = %q", got)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}
