package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestRoundTrip copies small files in with cp and checks that S3 holds the
// same bytes and that reading back through the mount gives them too.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket)
	src := t.TempDir()

	for _, size := range []int64{0, 1, 4096, 1<<20 + 7} {
		name := fmt.Sprintf("file-%d.bin", size)
		local := filepath.Join(src, name)
		sum := writeRandom(t, local, size)

		run(t, "cp", local, m.path(name))

		gotSum, gotSize := objectSHA256(t, srv, bucket, name)
		if gotSize != size || gotSum != sum {
			t.Errorf("S3 object %s: %d bytes sha256 %s; want %d bytes sha256 %s", name, gotSize, gotSum, size, sum)
		}
		run(t, "cmp", local, m.path(name))
		out := run(t, "ls", "-l", m.path(name))
		if f := strings.Fields(out); len(f) < 5 || f[4] != fmt.Sprint(size) {
			t.Errorf("ls -l %s = %q; want size %d", name, out, size)
		}
	}
}

// TestLargeFileMultipart writes 100 MiB with dd in 1 MiB writes, so it goes
// up as a multipart upload of 8 MiB parts, and reads it back.
func TestLargeFileMultipart(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket, "--multipart-threshold", "8MiB", "--part-size", "8MiB")
	local := filepath.Join(t.TempDir(), "big.bin")
	const size = 100 << 20
	sum := writeRandom(t, local, size)

	run(t, "dd", "if="+local, "of="+m.path("big.bin"), "bs=1M", "status=none")

	gotSum, gotSize := objectSHA256(t, srv, bucket, "big.bin")
	if gotSize != size || gotSum != sum {
		t.Fatalf("S3 object big.bin: %d bytes sha256 %s; want %d bytes sha256 %s", gotSize, gotSum, size, sum)
	}
	// A multipart ETag is md5-of-part-md5s "-" part count.
	head := headObject(t, srv, bucket, "big.bin")
	if head == nil {
		t.Fatal("big.bin: HeadObject: not found")
	}
	if etag := strings.Trim(aws.ToString(head.ETag), `"`); !strings.Contains(etag, "-") {
		t.Errorf("big.bin ETag %q is not a multipart ETag; want a multipart upload above --multipart-threshold", etag)
	}
	run(t, "cmp", local, m.path("big.bin"))
}

// TestCopyTree copies a nested tree with cp -r and compares it with diff -r,
// through this mount and through a fresh mount of the same bucket, so that
// what is compared the second time can only have come from S3.
func TestCopyTree(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	src := filepath.Join(t.TempDir(), "tree")
	files := map[string]int64{
		"top.txt":               12,
		"zero":                  0,
		"a/one.bin":             1,
		"a/small.txt":           300,
		"a/b/medium.bin":        3<<20 + 1,
		"a/b/c/deep.txt":        42,
		"a/b/c/d/deeper.bin":    70000,
		"with space/file 1.txt": 5,
	}
	for rel, size := range files {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeRandom(t, p, size)
	}
	for _, d := range []string{"empty", "a/b/empty-too"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	m := mountAmpfs(t, srv, bucket)
	run(t, "cp", "-r", src, m.path("tree"))
	run(t, "diff", "-r", src, m.path("tree"))

	keys := listKeys(t, srv, bucket, "tree/")
	for rel, size := range files {
		if _, n := objectSHA256(t, srv, bucket, "tree/"+rel); n != size {
			t.Errorf("tree/%s: %d bytes in S3, want %d", rel, n, size)
		}
	}
	for _, marker := range []string{"tree/empty/", "tree/a/b/empty-too/"} {
		if !slices.Contains(keys, marker) {
			t.Errorf("no marker object %q for an empty directory; keys: %q", marker, keys)
		}
	}
	m.stop(os.Interrupt)

	m2 := mountAmpfs(t, srv, bucket)
	run(t, "diff", "-r", src, m2.path("tree"))
}
