package integration

// The Amplify Storage layout (--layout amplify, DESIGN.md §1, issue 4)
// against a server that enforces Amplify's rights: versitygw with IAM, one
// account per identity, and a bucket policy granting each account what the
// Amplify Gen1 default policies grant its identity (gen1Statements).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// uploadWait is how long a test waits for a closed file to reach S3.
const uploadWait = 30 * time.Second

// TestAmplifyUsersAndGuest mounts the same bucket as user A, user B and a
// guest at the same time and checks each one's view and rights with real
// commands, and the bucket as the root account sees it.
func TestAmplifyUsersAndGuest(t *testing.T) {
	t.Parallel()
	srv, bucket := startAmplifyServer(t, userA, userB, guest)
	srv.PutBucketPolicy(t, bucket, bucketPolicy(
		gen1Statements(bucket, userA, false, nil),
		gen1Statements(bucket, userB, false, nil),
		gen1Statements(bucket, guest, false, nil),
	))
	a := mountAs(t, srv, bucket, userA)
	b := mountAs(t, srv, bucket, userB)
	g := mountAs(t, srv, bucket, guest)

	src := t.TempDir()
	local := func(name, body string) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("top level", func(t *testing.T) {
		want := []string{"private", "protected", "public", "uploads"}
		for _, m := range []*mount{a, b} {
			out := run(t, "ls", m.dir)
			if got := strings.Fields(out); !slices.Equal(got, want) {
				t.Errorf("ls %s = %q; want %q", m.dir, got, want)
			}
		}
		got, err := lsNames(t, g.dir)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(got, "public") || slices.Contains(got, "private") {
			t.Errorf("guest: ls %s = %q; want public and no private", g.dir, got)
		}
		// Nothing can be created at the top level or directly in protected/.
		mustFail(t, "Permission denied", "mkdir", a.path("extra"))
		mustFail(t, "Permission denied", "touch", a.path("extra.txt"))
		mustFail(t, "Permission denied", "mkdir", a.path("protected/not-an-identity"))
	})

	t.Run("own protected dir before any file", func(t *testing.T) {
		fi, err := os.Stat(a.path("protected/" + idA))
		if err != nil || !fi.IsDir() {
			t.Fatalf("stat MNT_A/protected/%s: %v; want the user's own directory even with no files", idA, err)
		}
		names, err := lsNames(t, a.path("protected"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(names, idA) {
			t.Errorf("ls MNT_A/protected = %q; want it to contain %s", names, idA)
		}
		if names, _ := lsNames(t, a.path("protected/"+idA)); len(names) != 0 {
			t.Errorf("ls MNT_A/protected/%s = %q; want empty", idA, names)
		}
	})

	// A writes one file in each of its trees.
	run(t, "cp", local("a.txt", "public from A\n"), a.path("public/a.txt"))
	run(t, "cp", local("p.txt", "protected from A\n"), a.path("protected/"+idA+"/p.txt"))
	run(t, "cp", local("secret.txt", "private to A\n"), a.path("private/secret.txt"))
	waitObject(t, srv, bucket, "public/a.txt")
	pA := waitObject(t, srv, bucket, "protected/"+idA+"/p.txt")
	sA := waitObject(t, srv, bucket, "private/"+idA+"/secret.txt")
	if keys := listKeys(t, srv, bucket, "private/"); !slices.Equal(keys, []string{"private/" + idA + "/secret.txt"}) {
		t.Errorf("keys under private/ = %q; want only private/%s/secret.txt", keys, idA)
	}
	if keys := listKeys(t, srv, bucket, ""); slices.Contains(keys, "secret.txt") || slices.Contains(keys, "private/secret.txt") {
		t.Errorf("private/secret.txt landed outside private/%s/: %q", idA, keys)
	}

	t.Run("A reads back its own files", func(t *testing.T) {
		if got := run(t, "cat", a.path("private/secret.txt")); got != "private to A\n" {
			t.Errorf("cat MNT_A/private/secret.txt = %q", got)
		}
		if got := strings.Fields(run(t, "ls", a.path("private"))); !slices.Equal(got, []string{"secret.txt"}) {
			t.Errorf("ls MNT_A/private = %q; want secret.txt", got)
		}
		if m := modeOf(t, a.path("protected/"+idA+"/p.txt")); m != "644" {
			t.Errorf("A: stat -c %%a protected/%s/p.txt = %s; want 644", idA, m)
		}
		if m := modeOf(t, a.path("protected/"+idA)); m != "755" {
			t.Errorf("A: stat -c %%a protected/%s = %s; want 755", idA, m)
		}
	})

	t.Run("A moves and removes within its rights", func(t *testing.T) {
		run(t, "cp", local("tmp.txt", "moved by A\n"), a.path("public/tmp.txt"))
		waitObject(t, srv, bucket, "public/tmp.txt")
		// Across trees: a server-side copy and a delete, both granted.
		run(t, "mv", a.path("public/tmp.txt"), a.path("protected/"+idA+"/moved.txt"))
		eventually(t, uploadWait, func() error {
			if headObject(t, srv, bucket, "public/tmp.txt") != nil || headObject(t, srv, bucket, "protected/"+idA+"/moved.txt") == nil {
				return fmt.Errorf("after mv public/tmp.txt protected/%s/moved.txt, keys %q", idA, listKeys(t, srv, bucket, ""))
			}
			return nil
		})
		if got := run(t, "cat", a.path("protected/"+idA+"/moved.txt")); got != "moved by A\n" {
			t.Errorf("cat moved.txt = %q", got)
		}
		run(t, "rm", a.path("protected/"+idA+"/moved.txt"))
		eventually(t, uploadWait, func() error {
			if headObject(t, srv, bucket, "protected/"+idA+"/moved.txt") != nil {
				return fmt.Errorf("protected/%s/moved.txt still in the bucket after rm", idA)
			}
			return nil
		})
		run(t, "mkdir", a.path("private/dir"))
		run(t, "touch", a.path("private/dir/empty"))
		waitObject(t, srv, bucket, "private/"+idA+"/dir/empty")
	})

	t.Run("B reads A's protected files but cannot change them", func(t *testing.T) {
		pB := b.path("protected/" + idA + "/p.txt")
		eventually(t, cacheTTL, func() error {
			names, err := lsNames(t, b.path("protected"))
			if err != nil {
				return err
			}
			if !slices.Contains(names, idA) || !slices.Contains(names, idB) {
				return fmt.Errorf("ls MNT_B/protected = %q; want %s (has files) and %s (B's own)", names, idA, idB)
			}
			return nil
		})
		if got := run(t, "cat", pB); got != "protected from A\n" {
			t.Errorf("B: cat protected/%s/p.txt = %q", idA, got)
		}
		mustShellFail(t, "Permission denied", "echo x > '"+pB+"'")
		mustShellFail(t, "Permission denied", "echo x >> '"+pB+"'")
		mustFail(t, "Permission denied", "rm", pB)
		mustFail(t, "Permission denied", "mv", pB, b.path("protected/"+idA+"/q.txt"))
		mustFail(t, "Permission denied", "mv", pB, b.path("protected/"+idB+"/stolen.txt"))
		mustFail(t, "Permission denied", "touch", b.path("protected/"+idA+"/new"))
		mustFail(t, "Permission denied", "cp", local("x", "x"), b.path("protected/"+idA+"/new2"))
		mustFail(t, "Permission denied", "mkdir", b.path("protected/"+idA+"/d"))
		mustFail(t, "Permission denied", "truncate", "-s", "0", pB)

		if st, ok := stateOf(t, srv, bucket, "protected/"+idA+"/p.txt"); !ok || st != pA {
			t.Errorf("protected/%s/p.txt after B's attempts: %v (exists %v); want unchanged %v", idA, st, ok, pA)
		}
		for _, k := range []string{"q.txt", "new", "new2", "d/"} {
			if headObject(t, srv, bucket, "protected/"+idA+"/"+k) != nil {
				t.Errorf("B's denied attempt created protected/%s/%s", idA, k)
			}
		}
		if headObject(t, srv, bucket, "protected/"+idB+"/stolen.txt") != nil {
			t.Errorf("B's denied mv created protected/%s/stolen.txt", idB)
		}
		if got := run(t, "cat", pB); got != "protected from A\n" {
			t.Errorf("B: cat protected/%s/p.txt after denied writes = %q", idA, got)
		}

		// Modes follow the rules: A's tree is read-only for B, B's own is not.
		out := run(t, "ls", "-l", b.path("protected/"+idA))
		if !strings.Contains(out, "-r--r--r--") {
			t.Errorf("B: ls -l protected/%s = %q; want p.txt -r--r--r--", idA, out)
		}
		if m := modeOf(t, pB); m != "444" {
			t.Errorf("B: stat -c %%a protected/%s/p.txt = %s; want 444", idA, m)
		}
		if m := modeOf(t, b.path("protected/"+idA)); m != "555" {
			t.Errorf("B: stat -c %%a protected/%s = %s; want 555", idA, m)
		}
		run(t, "cp", local("own.txt", "protected from B\n"), b.path("protected/"+idB+"/own.txt"))
		waitObject(t, srv, bucket, "protected/"+idB+"/own.txt")
		if m := modeOf(t, b.path("protected/"+idB+"/own.txt")); m != "644" {
			t.Errorf("B: stat -c %%a protected/%s/own.txt = %s; want 644", idB, m)
		}
		if m := modeOf(t, b.path("protected/"+idB)); m != "755" {
			t.Errorf("B: stat -c %%a protected/%s = %s; want 755", idB, m)
		}
		// Nothing moves into A's tree either, and A's directory stays.
		mustFail(t, "Permission denied", "mv", b.path("protected/"+idB+"/own.txt"), b.path("protected/"+idA+"/own.txt"))
		mustFail(t, "Permission denied", "rmdir", b.path("protected/"+idA))
		if headObject(t, srv, bucket, "protected/"+idA+"/own.txt") != nil || headObject(t, srv, bucket, "protected/"+idB+"/own.txt") == nil {
			t.Errorf("after B's denied mv into A's tree: keys %q", listKeys(t, srv, bucket, "protected/"))
		}
		// And A sees B's file read-only in turn.
		eventually(t, cacheTTL, func() error {
			if got, err := runErr(t, "cat", a.path("protected/"+idB+"/own.txt")); err != nil || got != "protected from B\n" {
				return fmt.Errorf("A: cat protected/%s/own.txt = %q, %v", idB, got, err)
			}
			return nil
		})
		mustFail(t, "Permission denied", "rm", a.path("protected/"+idB+"/own.txt"))
	})

	t.Run("B cannot see A's private tree", func(t *testing.T) {
		run(t, "cp", local("b.txt", "private to B\n"), b.path("private/b.txt"))
		waitObject(t, srv, bucket, "private/"+idB+"/b.txt")
		names, err := lsNames(t, b.path("private"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names, []string{"b.txt"}) {
			t.Errorf("ls MNT_B/private = %q; want only b.txt", names)
		}
		mustFail(t, "No such file or directory", "cat", b.path("private/secret.txt"))
		mustFail(t, "No such file or directory", "cat", b.path("private/"+idA+"/secret.txt"))
		mustFail(t, "No such file or directory", "ls", b.path("private/"+idA))
		// A's private view is still only A's.
		names, err = lsNames(t, a.path("private"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names, []string{"dir", "secret.txt"}) {
			t.Errorf("ls MNT_A/private = %q; want dir secret.txt", names)
		}
		if st, ok := stateOf(t, srv, bucket, "private/"+idA+"/secret.txt"); !ok || st != sA {
			t.Errorf("private/%s/secret.txt: %v (exists %v); want unchanged %v", idA, st, ok, sA)
		}
	})

	t.Run("guest reads public only", func(t *testing.T) {
		eventually(t, cacheTTL, func() error {
			got, err := runErr(t, "cat", g.path("public/a.txt"))
			if err != nil || got != "public from A\n" {
				return fmt.Errorf("guest: cat public/a.txt = %q, %v", got, err)
			}
			return nil
		})
		names, err := lsNames(t, g.path("public"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(names, "a.txt") {
			t.Errorf("guest: ls public = %q; want a.txt", names)
		}
		before, _ := stateOf(t, srv, bucket, "public/a.txt")
		mustFail(t, "Permission denied", "touch", g.path("public/x"))
		mustFail(t, "Permission denied", "cp", local("gx", "guest"), g.path("public/x2"))
		mustFail(t, "Permission denied", "rm", g.path("public/a.txt"))
		mustFail(t, "Permission denied", "mkdir", g.path("public/d"))
		mustShellFail(t, "Permission denied", "echo x > '"+g.path("public/a.txt")+"'")
		for _, k := range []string{"public/x", "public/x2", "public/d/"} {
			if headObject(t, srv, bucket, k) != nil {
				t.Errorf("guest's denied attempt created %s", k)
			}
		}
		if after, ok := stateOf(t, srv, bucket, "public/a.txt"); !ok || after != before {
			t.Errorf("public/a.txt after the guest's attempts: %v (exists %v); want unchanged %v", after, ok, before)
		}
		if m := modeOf(t, g.path("public/a.txt")); m != "444" {
			t.Errorf("guest: stat -c %%a public/a.txt = %s; want 444", m)
		}
		if m := modeOf(t, g.path("public")); m != "555" {
			t.Errorf("guest: stat -c %%a public = %s; want 555", m)
		}
		mustFail(t, "No such file or directory", "ls", g.path("private"))
	})

	t.Run("uploads is write-only", func(t *testing.T) {
		run(t, "cp", local("up.bin", "upload from A\n"), a.path("uploads/f"))
		up := waitObject(t, srv, bucket, "uploads/f")
		if up.size != int64(len("upload from A\n")) {
			t.Errorf("uploads/f: %v; want %d bytes", up, len("upload from A\n"))
		}
		mustFail(t, "Permission denied", "ls", a.path("uploads"))
		mustFail(t, "Permission denied", "cat", a.path("uploads/f"))
	})

	// Everything denied above was refused by the mount itself; a refusal
	// from the server would have been logged (at warn) with the key.
	for _, m := range []*mount{a, b, g} {
		if lines := m.warnLines("access denied"); len(lines) > 0 {
			t.Errorf("%s: the server was asked for something the rules forbid:\n%s", m.dir, strings.Join(lines, "\n"))
		}
	}
}

// TestAmplifyServerDenies: when the bucket policy is narrower than the
// rules (here: no s3:DeleteObject on public/*, no s3:GetObject on
// protected/*), the operation the server refuses fails with EACCES (never
// EIO), the log has a warn line naming the key, and the mount keeps
// working.
func TestAmplifyServerDenies(t *testing.T) {
	t.Parallel()
	srv, bucket := startAmplifyServer(t, userC)
	srv.PutBucketPolicy(t, bucket, bucketPolicy(gen1Statements(bucket, userC, false, map[string][]string{
		"public/*":    {"s3:DeleteObject"},
		"protected/*": {"s3:GetObject"},
	})))
	putObject(t, srv, bucket, "public/file", []byte("keep me\n"))
	putObject(t, srv, bucket, "protected/"+idA+"/p.txt", []byte("A's\n"))
	m := mountAs(t, srv, bucket, userC)

	mustFail(t, "Permission denied", "rm", m.path("public/file"))
	if headObject(t, srv, bucket, "public/file") == nil {
		t.Errorf("public/file is gone after a delete the server refused")
	}
	eventually(t, cacheTTL, func() error {
		names, err := lsNames(t, m.path("public"))
		if err != nil {
			return err
		}
		if !slices.Contains(names, "file") {
			return fmt.Errorf("ls public after the refused rm = %q; want file still there", names)
		}
		return nil
	})
	if got := run(t, "cat", m.path("public/file")); got != "keep me\n" {
		t.Errorf("cat public/file = %q", got)
	}
	if lines := m.warnLines("public/file"); len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), "DeleteObject") {
		t.Errorf("warn log lines naming public/file after the refused delete: %q; want one naming the key and DeleteObject", lines)
	}

	mustFail(t, "Permission denied", "cat", m.path("protected/"+idA+"/p.txt"))
	// The refusal may come from the HeadObject of a lookup or from the
	// GetObject of the read; both need s3:GetObject.
	if lines := m.warnLines("protected/" + idA + "/p.txt"); len(lines) == 0 || !regexp.MustCompile(`(Get|Head)Object`).MatchString(strings.Join(lines, "\n")) {
		t.Errorf("warn log lines naming protected/%s/p.txt after the refused read: %q; want one naming the key and GetObject or HeadObject", idA, lines)
	}

	// Still mounted and working.
	if _, err := lsNames(t, m.dir); err != nil {
		t.Error(err)
	}
	local := filepath.Join(t.TempDir(), "after")
	if err := os.WriteFile(local, []byte("after\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", local, m.path("public/after.txt"))
	waitObject(t, srv, bucket, "public/after.txt")
	if ok, err := m.mounted(); !ok || err != nil {
		t.Errorf("mount gone after the refusals: mounted %v, %v", ok, err)
	}
}

// TestAmplifyScopedListPolicy uses Amplify's own s3:ListBucket condition
// (s3:prefix public/, protected/ and the user's private/ID/ only), so the
// server refuses any listing of the bucket root, private/ or uploads/, and
// a HeadBucket. Mounting and listing the three trees must still work:
// the top level is built locally and only allowed prefixes are listed.
func TestAmplifyScopedListPolicy(t *testing.T) {
	t.Parallel()
	srv, bucket := startAmplifyServer(t, userA, guest)
	srv.PutBucketPolicy(t, bucket, bucketPolicy(
		gen1Statements(bucket, userA, true, nil),
		gen1Statements(bucket, guest, true, nil),
	))
	putObject(t, srv, bucket, "public/p", []byte("p"))
	putObject(t, srv, bucket, "protected/"+idB+"/q", []byte("q"))
	putObject(t, srv, bucket, "private/"+idA+"/r", []byte("r"))
	putObject(t, srv, bucket, "private/"+idB+"/s", []byte("s"))

	a := mountAs(t, srv, bucket, userA)
	g := mountAs(t, srv, bucket, guest)

	if got := strings.Fields(run(t, "ls", a.dir)); !slices.Equal(got, []string{"private", "protected", "public", "uploads"}) {
		t.Errorf("ls MNT_A = %q", got)
	}
	for dir, want := range map[string][]string{
		"public":           {"p"},
		"protected":        {idA, idB},
		"protected/" + idB: {"q"},
		"private":          {"r"},
	} {
		got, err := lsNames(t, a.path(dir))
		if err != nil {
			t.Error(err)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("ls MNT_A/%s = %q; want %q", dir, got, want)
		}
	}
	if got := run(t, "cat", a.path("private/r")); got != "r" {
		t.Errorf("cat MNT_A/private/r = %q", got)
	}
	if got, err := lsNames(t, g.path("public")); err != nil || !slices.Equal(got, []string{"p"}) {
		t.Errorf("guest: ls public = %q, %v; want p", got, err)
	}
	for _, m := range []*mount{a, g} {
		if lines := m.warnLines("access denied"); len(lines) > 0 {
			t.Errorf("%s: a request the policy denies was sent:\n%s", m.dir, strings.Join(lines, "\n"))
		}
	}
}

// TestAmplifyPolicy checks the fixture, not ampfs: through the S3 API, each
// account may do exactly what gen1Statements says on each prefix, so that
// the mount tests above test the mount against Amplify's rights.
func TestAmplifyPolicy(t *testing.T) {
	t.Parallel()
	srv, bucket := startAmplifyServer(t, userA, userB, guest)
	srv.PutBucketPolicy(t, bucket, bucketPolicy(
		gen1Statements(bucket, userA, true, nil),
		gen1Statements(bucket, userB, true, nil),
		gen1Statements(bucket, guest, true, nil),
	))
	for _, k := range []string{"public/o", "protected/" + idA + "/o", "protected/" + idB + "/o",
		"private/" + idA + "/o", "private/" + idB + "/o", "uploads/o", "other/o"} {
		putObject(t, srv, bucket, k, []byte("o"))
	}
	ctx := s3ctx(t)
	const (
		get = 1 << iota
		put
		del
		list
	)
	type check struct {
		key  string // a prefix ending in / for list
		want int    // the operations allowed
	}
	for _, c := range []struct {
		u      amplifyUser
		checks []check
	}{
		{userA, []check{
			{"public/o", get | put | del | list},
			{"protected/" + idA + "/o", get | put | del | list},
			{"protected/" + idB + "/o", get | list},
			{"private/" + idA + "/o", get | put | del | list},
			{"private/" + idB + "/o", 0},
			{"uploads/o", put},
			{"other/o", 0},
		}},
		{userB, []check{
			{"protected/" + idA + "/o", get | list},
			{"protected/" + idB + "/o", get | put | del | list},
			{"private/" + idA + "/o", 0},
			{"private/" + idB + "/o", get | put | del | list},
		}},
		{guest, []check{
			{"public/o", get | list},
			{"protected/" + idA + "/o", 0},
			{"private/" + idA + "/o", 0},
			{"uploads/o", 0},
		}},
	} {
		cl := srv.ClientFor(c.u.access, c.u.secret)
		for _, ch := range c.checks {
			dir := ch.key[:strings.LastIndex(ch.key, "/")+1]
			ops := []struct {
				bit int
				f   func() error
			}{
				{get, func() error {
					_, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(ch.key)})
					return err
				}},
				{list, func() error {
					_, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(dir), Delimiter: aws.String("/")})
					return err
				}},
				{put, func() error {
					_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(ch.key + ".new"), Body: strings.NewReader("n")})
					return err
				}},
				{del, func() error {
					_, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(ch.key + ".new")})
					return err
				}},
			}
			for _, op := range ops {
				err := op.f()
				name := map[int]string{get: "GetObject", put: "PutObject", del: "DeleteObject", list: "ListObjectsV2 " + dir}[op.bit]
				switch {
				case ch.want&op.bit != 0 && err != nil:
					t.Errorf("%s: %s %s: %v; want allowed", c.u.access, name, ch.key, err)
				case ch.want&op.bit == 0 && !isAccessDenied(err):
					t.Errorf("%s: %s %s: %v; want AccessDenied", c.u.access, name, ch.key, err)
				}
			}
		}
		// Amplify's policies never allow listing the root or private/.
		for _, p := range []string{"", "private/"} {
			_, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(p), Delimiter: aws.String("/")})
			if !isAccessDenied(err) {
				t.Errorf("%s: ListObjectsV2 prefix %q: %v; want AccessDenied", c.u.access, p, err)
			}
		}
	}
}

func isAccessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied"
}
