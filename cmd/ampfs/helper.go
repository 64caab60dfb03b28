package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
)

// mount.ampfs: this binary called under that name (make install links it
// into /usr/sbin) takes mount(8)'s calling convention,
//
//	mount.ampfs SOURCE DIR [-sfnv] [-o opt1,opt2=val,...] [-t ampfs]
//
// and runs 'ampfs mount --daemon --OPT1 --OPT2=val ... SOURCE DIR', so that
// 'mount -t ampfs' and /etc/fstab lines work. SOURCE is the bucket; with
// config= it may be "ampfs" (or "none") to take the bucket from the app's
// configuration. "ampfs:BUCKET", as /proc/mounts shows it, works too.

// helperName is the name mount(8) calls helpers by for type ampfs.
const helperName = "mount.ampfs"

// isHelper reports whether argv[0] is mount.ampfs.
func isHelper(argv0 string) bool { return filepath.Base(argv0) == helperName }

// ignoredOptions are mount options that mean nothing to a FUSE daemon, or
// that mount(8) and systemd read themselves.
var ignoredOptions = map[string]bool{
	"_netdev": true, "nofail": true, "auto": true, "noauto": true, "defaults": true,
	"rw": true, "user": true, "users": true, "nouser": true, "owner": true, "group": true,
	"suid": true, "nosuid": true, "dev": true, "nodev": true, "exec": true, "noexec": true,
	"async": true, "atime": true, "noatime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true, "diratime": true, "nodiratime": true,
	"lazytime": true, "nolazytime": true, "silent": true, "loud": true, "nofail_fuse": true,
}

// internalFlags are mount flags that -o may not set.
var internalFlags = map[string]bool{"daemon": true, "ready-fd": true, "help": true, "h": true}

// helperArgs turns mount.ampfs's arguments into the app's ("mount",
// "--daemon", flags..., SOURCE, DIR). flags are the mount command's.
// fake reports -f: mount(8) asked to do everything but the mount.
func helperArgs(args []string, flags []cli.Flag) (out []string, fake bool, err error) {
	var pos, opts []string
	sloppy := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "-t" || a == "-N":
			if i+1 >= len(args) {
				return nil, false, fmt.Errorf("%s needs a value", a)
			}
			switch a {
			case "-o":
				opts = append(opts, args[i+1])
			case "-N":
				return nil, false, fmt.Errorf("-N (mount namespaces) is not supported")
			}
			i++
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			opts = append(opts, a[2:])
		case strings.HasPrefix(a, "-t") && len(a) > 2:
		case strings.HasPrefix(a, "-") && len(a) > 1 && !strings.HasPrefix(a, "--"):
			for _, f := range a[1:] {
				switch f {
				case 's':
					sloppy = true
				case 'f':
					fake = true
				case 'n', 'v', 'r', 'w':
					// no mtab; verbose; rw is the default and ro is
					// refused below through -o ro.
					if f == 'r' {
						return nil, false, fmt.Errorf("read-only mounts (-r) are not supported yet")
					}
				default:
					return nil, false, fmt.Errorf("unknown flag -%c", f)
				}
			}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, false, fmt.Errorf("usage: mount.ampfs SOURCE DIR [-o options]: got %d arguments", len(pos))
	}
	byName := map[string]cli.Flag{}
	for _, f := range flags {
		for _, n := range f.Names() {
			byName[n] = f
		}
	}
	out = []string{"mount", "--daemon"}
	hasConfig := false
	for _, o := range opts {
		parts, err := splitOptions(o)
		if err != nil {
			return nil, false, err
		}
		for _, opt := range parts {
			name, val, hasVal := strings.Cut(opt, "=")
			switch {
			case name == "":
				continue
			case ignoredOptions[name] && (!hasVal || name == "user"), // mount(8) passes user=NAME
				strings.HasPrefix(name, "x-"), strings.HasPrefix(name, "comment"):
				continue
			case name == "ro":
				return nil, false, fmt.Errorf("read-only mounts (ro) are not supported yet")
			}
			flagName := strings.ReplaceAll(name, "_", "-")
			f, ok := byName[flagName]
			if !ok || internalFlags[flagName] {
				if sloppy {
					continue
				}
				return nil, false, fmt.Errorf("unknown option %q: the options are the flags of 'ampfs mount --help', without dashes", name)
			}
			if flagName == "config" {
				hasConfig = true
			}
			if _, isBool := f.(*cli.BoolFlag); isBool {
				if !hasVal {
					out = append(out, "--"+flagName)
				} else {
					out = append(out, "--"+flagName+"="+val)
				}
				continue
			}
			if !hasVal {
				return nil, false, fmt.Errorf("option %s needs a value, as in %s=VALUE", name, name)
			}
			out = append(out, "--"+flagName+"="+val)
		}
	}
	source, dir := strings.TrimPrefix(pos[0], "ampfs:"), pos[1]
	switch {
	case hasConfig && (source == "" || source == "ampfs" || source == "none"):
		out = append(out, dir)
	case source == "" || source == "none":
		return nil, false, fmt.Errorf("source %q: give the bucket name (or config=FILE)", pos[0])
	default:
		out = append(out, source, dir)
	}
	return out, fake, nil
}

// splitOptions splits a mount option string on commas, keeping commas
// inside double quotes (mount(8) passes on-upload="a, b" quoted) and
// removing the quotes.
func splitOptions(s string) ([]string, error) {
	var out []string
	var b strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteRune(r)
		}
	}
	if quoted {
		return nil, fmt.Errorf("unbalanced quotes in options %q", s)
	}
	return append(out, b.String()), nil
}
