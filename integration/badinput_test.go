package integration

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// badInputTimeout is how long `ampfs mount` may take to refuse bad input.
const badInputTimeout = 10 * time.Second

// TestBadInput: each mistake a user can make on the command line or in the
// environment makes `ampfs mount` exit non-zero within 10 s with one line
// on stderr that starts "ampfs: " and names the problem, and mounts nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := func() string {
		d, err := os.MkdirTemp(tmp, "mnt-")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	env := append(os.Environ(), srv.Env()...)
	mountArgs := func(endpoint, bucket, mnt string) []string {
		return []string{"mount", "--layout", "raw", "--path-style", "--endpoint", endpoint, "--cache-dir", filepath.Join(tmp, "cache"), bucket, mnt}
	}

	tests := []struct {
		name  string
		args  []string
		env   []string
		wrap  []string // command line the binary runs under
		want  string   // regexp the stderr line must match
		setup func(t *testing.T) []string
	}{
		{
			name: "mountpoint missing",
			args: mountArgs(srv.Endpoint, bucket, filepath.Join(tmp, "no-such-dir")),
			want: `(?i)(not exist|no such|missing|not found)`,
		},
		{
			name: "mountpoint not a directory",
			args: mountArgs(srv.Endpoint, bucket, file),
			want: `(?i)not a directory`,
		},
		{
			name: "mountpoint already mounted",
			setup: func(t *testing.T) []string {
				m := mountAmpfs(t, srv, bucket)
				return mountArgs(srv.Endpoint, bucket, m.dir)
			},
			want: `(?i)already mounted`,
		},
		{
			name: "endpoint unreachable",
			args: mountArgs("http://"+closedAddr(t), bucket, dir()),
			want: `(?i)(unreachable|cannot reach|can't reach|could not reach|connection refused)`,
		},
		{
			name: "wrong secret key",
			args: mountArgs(srv.Endpoint, bucket, dir()),
			env:  []string{"AWS_SECRET_ACCESS_KEY=not-the-secret"},
			want: `(?i)credential`,
		},
		{
			name: "unknown access key",
			args: mountArgs(srv.Endpoint, bucket, dir()),
			env:  []string{"AWS_ACCESS_KEY_ID=not-a-known-key", "AWS_SECRET_ACCESS_KEY=not-the-secret"},
			want: `(?i)credential`,
		},
		{
			name: "no credentials at all",
			args: mountArgs(srv.Endpoint, bucket, dir()),
			env: []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_PROFILE=",
				"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(tmp, "none"), "AWS_CONFIG_FILE=" + filepath.Join(tmp, "none"),
				"AWS_EC2_METADATA_DISABLED=true"},
			want: `(?i)no usable AWS credentials`,
		},
		{
			name: "profile missing",
			args: append([]string{"mount", "--profile", "no-such-profile"}, mountArgs(srv.Endpoint, bucket, dir())[1:]...),
			env:  []string{"AWS_CONFIG_FILE=" + filepath.Join(tmp, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(tmp, "none")},
			want: `(?i)profile.*no-such-profile`,
		},
		{
			name: "bucket missing",
			args: mountArgs(srv.Endpoint, "no-such-bucket", dir()),
			want: `(?i)bucket.*no-such-bucket|no-such-bucket.*bucket`,
		},
		{
			name: "dev fuse missing",
			args: mountArgs(srv.Endpoint, bucket, dir()),
			// A private mount namespace whose /dev is an empty tmpfs.
			wrap: []string{"unshare", "--mount", "--propagation", "private", "--",
				"sh", "-c", `mount -t tmpfs tmpfs /dev && exec "$@"`, "sh"},
			want: `/dev/fuse`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args
			if tc.setup != nil {
				args = tc.setup(t)
			}
			if len(tc.wrap) > 0 && !canUnshare(t) {
				t.Skip("needs root and unshare(1) to hide /dev/fuse")
			}
			cmdline := append(append([]string{}, tc.wrap...), ampfsBin)
			cmdline = append(cmdline, args...)
			mnt := args[len(args)-1]

			ctx, cancel := context.WithTimeout(context.Background(), badInputTimeout+5*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
			cmd.Env = append(append(append([]string{}, env...), tc.env...), "LC_ALL=C")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)

			cmdStr := strings.Join(cmdline, " ")
			if err == nil {
				t.Errorf("%s: exit 0, want non-zero", cmdStr)
				forceUnmount(mnt)
			} else if _, ok := err.(*exec.ExitError); !ok {
				t.Errorf("%s: %v", cmdStr, err)
			}
			if took > badInputTimeout {
				t.Errorf("%s: took %v, want < %v", cmdStr, took.Round(time.Millisecond), badInputTimeout)
			}
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			switch {
			case len(lines) != 1:
				t.Errorf("%s: stderr has %d lines, want 1:\n%s", cmdStr, len(lines), stderr.String())
			case !strings.HasPrefix(lines[0], "ampfs: "):
				t.Errorf("%s: stderr %q does not start with \"ampfs: \"", cmdStr, lines[0])
			case !regexp.MustCompile(tc.want).MatchString(lines[0]):
				t.Errorf("%s: stderr %q does not match %q", cmdStr, lines[0], tc.want)
			default:
				t.Logf("%v, exit %v: %s", took.Round(time.Millisecond), err, lines[0])
			}
			if tc.setup == nil { // the already-mounted case checks its own mount
				if ms, _ := mountsAt(mnt); len(ms) > 0 {
					t.Errorf("%s left %s mounted", cmdStr, mnt)
					forceUnmount(mnt)
				}
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// canUnshare reports whether this process may make a mount namespace.
func canUnshare(t *testing.T) bool {
	if os.Geteuid() != 0 {
		return false
	}
	err := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "mount -t tmpfs tmpfs /dev").Run()
	if err != nil {
		t.Logf("unshare: %v", err)
	}
	return err == nil
}
