package integration

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// go-fuse's POSIX conformance suite (posixtest.All) against real mounts.
// Every test passes on ampfs except those named below, each with the
// reason it cannot.

// posixtestSkips are the tests that cannot pass on ampfs, and why.
var posixtestSkips = map[string]string{
	"Link": "hard links: S3 has no links; ampfs answers link(2) with " +
		"ENOTSUP (README: hard link, mknod, fifo)",
	"LinkUnlinkRename": "renames by link(2) then unlink(2): S3 has no hard " +
		"links; ampfs answers link(2) with ENOTSUP",
	"FcntlFlockLocksFile": "the test is wrong: POSIX record locks belong to " +
		"the process, and it asks for the conflicting lock from the same " +
		"process through a second descriptor, which the kernel grants on " +
		"every file system (it fails on ext4 and tmpfs too); go-fuse's own " +
		"TestAll skips it",
}

// posixtestSelfSkips are the tests that skip themselves on ampfs, and
// why. Should one of them pass one day, the test says so.
var posixtestSelfSkips = map[string]string{
	"Tmpfile": "O_TMPFILE: a file without a name can only get one with " +
		"linkat(2), and S3 has no links; ampfs answers EOPNOTSUPP, so " +
		"programs fall back to a named temporary file",
	"XAttrLarge": "an 8 KiB xattr: user.* xattrs live in the " +
		"x-amz-meta-xattr header, and S3 caps user metadata at 2 KiB; " +
		"ampfs answers E2BIG (README)",
	"RenameOpenDir": "fstat of a directory replaced by a rename while " +
		"open shows the defaults (0755), not its former mode: ampfs keeps " +
		"directory attributes by path, and a replaced directory has none " +
		"(the test calls it go-fuse's known limitation, issue 55)",
}

// posixtestSlow are tests that pass on ampfs but are too slow for every
// `make test`; AMPFS_POSIXTEST_SLOW=1 runs them.
var posixtestSlow = map[string]string{
	"OpenSymlinkRace": "passes, but its 1000 rounds of create, rename, " +
		"symlink and rename are thousands of S3 requests: 20-50 s against " +
		"versitygw",
}

// TestPosixtest runs posixtest.All against two ampfs mounts, write-back
// (the default) and --sync-on-close (what the other tests here use), each
// test in a fresh directory of its own. The tests make their system calls
// from this process; ampfs serves them from its own.
func TestPosixtest(t *testing.T) {
	t.Parallel()
	for _, list := range []map[string]string{posixtestSkips, posixtestSelfSkips, posixtestSlow} {
		for name := range list {
			if _, ok := posixtest.All[name]; !ok {
				t.Errorf("%q is not in posixtest.All", name)
			}
		}
	}
	for _, mode := range []struct{ name, flag string }{
		{"write-back", "--sync-on-close=false"},
		{"sync-on-close", "--sync-on-close"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv, bucket := startServer(t)
			m := mountAmpfs(t, srv, bucket, mode.flag)
			runPosixtest(t, m.dir, func(t *testing.T, name string) {
				if reason, ok := posixtestSkips[name]; ok {
					t.Skip(reason)
				}
				if reason, ok := posixtestSlow[name]; ok && os.Getenv("AMPFS_POSIXTEST_SLOW") == "" {
					t.Skip(reason + "; AMPFS_POSIXTEST_SLOW=1 runs it")
				}
			}, func(t *testing.T, name string) {
				if reason, ok := posixtestSelfSkips[name]; ok {
					t.Errorf("passed, but posixtestSelfSkips says it skips itself (%s): update the list", reason)
				}
			})
		})
	}
}

// runPosixtest runs every test of posixtest.All as a subtest, in a new
// directory below dir named after it; before runs first (it may skip),
// passed after a test that neither failed nor skipped.
func runPosixtest(t *testing.T, dir string, before, passed func(t *testing.T, name string)) {
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if before != nil {
				before(t, name)
			}
			sub := filepath.Join(dir, name)
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			posixtest.All[name](t, sub)
			if passed != nil && !t.Failed() {
				passed(t, name)
			}
		})
	}
}
