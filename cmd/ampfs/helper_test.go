package main

import (
	"slices"
	"strings"
	"testing"
)

func TestHelperArgs(t *testing.T) {
	flags := mountCommand().Flags
	for _, c := range []struct {
		name string
		args string
		want string // "" with err
		err  string
		fake bool
	}{
		{name: "bucket only", args: "bkt /mnt/x",
			want: "mount --daemon bkt /mnt/x"},
		{name: "options of mount(8) order", args: "bkt /mnt/x -o rw,cache-dir=/var/cache/a,layout=raw,path-style,endpoint=http://127.0.0.1:7070",
			want: "mount --daemon --cache-dir=/var/cache/a --layout=raw --path-style --endpoint=http://127.0.0.1:7070 bkt /mnt/x"},
		{name: "options first", args: "-o guest,region=eu-west-1 bkt /mnt/x",
			want: "mount --daemon --guest --region=eu-west-1 bkt /mnt/x"},
		{name: "fstab and systemd options ignored", args: "bkt /mnt/x -o _netdev,nofail,noauto,auto,defaults,user,user=alice,group,nosuid,nodev,noatime,x-systemd.automount,x-systemd.idle-timeout=60,comment=x",
			want: "mount --daemon bkt /mnt/x"},
		{name: "allow_other with underscore", args: "bkt /mnt/x -o allow_other,identity_id=us-east-1:0a1b",
			want: "mount --daemon --allow-other --identity-id=us-east-1:0a1b bkt /mnt/x"},
		{name: "config and placeholder source", args: "ampfs /mnt/app -o config=/etc/ampfs/app.json",
			want: "mount --daemon --config=/etc/ampfs/app.json /mnt/app"},
		{name: "config with a bucket", args: "other-bucket /mnt/app -o config=/etc/ampfs/app.json",
			want: "mount --daemon --config=/etc/ampfs/app.json other-bucket /mnt/app"},
		{name: "ampfs: source as /proc/mounts shows it", args: "ampfs:bkt /mnt/x",
			want: "mount --daemon bkt /mnt/x"},
		{name: "repeated group and -oX form", args: "bkt /mnt/x -ogroup=admins,group=editors -t ampfs",
			want: "mount --daemon --group=admins --group=editors bkt /mnt/x"},
		{name: "quoted command with commas", args: `bkt /mnt/x -o on-upload="convert a,b",log-file=/var/log/ampfs.log,metrics-addr=127.0.0.1:9370`,
			want: "mount --daemon --on-upload=convert a,b --log-file=/var/log/ampfs.log --metrics-addr=127.0.0.1:9370 bkt /mnt/x"},
		{name: "bool with value", args: "bkt /mnt/x -o path-style=false",
			want: "mount --daemon --path-style=false bkt /mnt/x"},
		{name: "-n and -v", args: "-nv bkt /mnt/x",
			want: "mount --daemon bkt /mnt/x"},
		{name: "fake", args: "-f bkt /mnt/x", want: "mount --daemon bkt /mnt/x", fake: true},
		{name: "sloppy skips unknown", args: "-s bkt /mnt/x -o frobnicate,layout=raw",
			want: "mount --daemon --layout=raw bkt /mnt/x"},
		{name: "unknown option", args: "bkt /mnt/x -o frobnicate", err: `unknown option "frobnicate"`},
		{name: "internal flag", args: "bkt /mnt/x -o ready-fd=3", err: `unknown option "ready-fd"`},
		{name: "value missing", args: "bkt /mnt/x -o cache-dir", err: "needs a value"},
		{name: "read-only", args: "bkt /mnt/x -o ro", err: "read-only"},
		{name: "one argument", args: "/mnt/x", err: "usage"},
		{name: "no bucket without config", args: "none /mnt/x", err: "give the bucket"},
		{name: "namespaces", args: "bkt /mnt/x -N 1234", err: "not supported"},
		{name: "unbalanced quote", args: `bkt /mnt/x -o on-upload="a`, err: "unbalanced"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, fake, err := helperArgs(splitArgs(c.args), flags)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q (args %q)", err, c.err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Split(c.want, " "); c.name == "quoted command with commas" {
				want = []string{"mount", "--daemon", "--on-upload=convert a,b", "--log-file=/var/log/ampfs.log", "--metrics-addr=127.0.0.1:9370", "bkt", "/mnt/x"}
				if !slices.Equal(got, want) {
					t.Errorf("got %q, want %q", got, want)
				}
			} else if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
			if fake != c.fake {
				t.Errorf("fake = %v, want %v", fake, c.fake)
			}
		})
	}
}

// splitArgs splits on spaces outside double quotes, as a shell would hand
// mount(8)'s -o string to the helper in one piece.
func splitArgs(s string) []string {
	var out []string
	var b strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			b.WriteRune(r)
		case r == ' ' && !quoted:
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteRune(r)
		}
	}
	return append(out, b.String())
}

func TestChildArgs(t *testing.T) {
	got := childArgs([]string{"mount", "--daemon", "--layout=raw", "b", "/m"})
	want := []string{"mount", "--ready-fd", "3", "--layout=raw", "b", "/m"}
	if !slices.Equal(got, want) {
		t.Errorf("childArgs = %q, want %q", got, want)
	}
}

func TestIsHelper(t *testing.T) {
	for argv0, want := range map[string]bool{
		"/sbin/mount.ampfs": true, "mount.ampfs": true, "/usr/local/bin/ampfs": false, "mount.fuse": false,
	} {
		if got := isHelper(argv0); got != want {
			t.Errorf("isHelper(%q) = %v", argv0, got)
		}
	}
}
