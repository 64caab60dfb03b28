package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ampfs/ampfs/store"
)

// fuseDevice is the kernel's FUSE device.
const fuseDevice = "/dev/fuse"

// checkFuseDevice fails early with a fix when FUSE is not available,
// instead of a mount(2) error nobody can act on.
func checkFuseDevice() error {
	fi, err := os.Stat(fuseDevice)
	if err != nil {
		return userErrorf("%s is missing: load the FUSE module (modprobe fuse), or in a container pass --device /dev/fuse", fuseDevice)
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return userErrorf("%s is not a character device: load the FUSE module (modprobe fuse)", fuseDevice)
	}
	return nil
}

// checkMountpoint returns the absolute mountpoint, or an error saying what
// to do about it.
func checkMountpoint(mnt string) (string, error) {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return "", userErrorf("mountpoint %s: %v", mnt, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return "", userErrorf("%s is a dead mount (its ampfs process ended): run 'ampfs unmount %s' first", abs, mnt)
	case errors.Is(err, os.ErrNotExist):
		return "", userErrorf("mountpoint %s does not exist: create it with 'mkdir -p %s'", abs, mnt)
	case err != nil:
		return "", userErrorf("mountpoint %s: %v", abs, err)
	case !fi.IsDir():
		return "", userErrorf("mountpoint %s is not a directory: give an empty directory", abs)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if fstype, src, ok := mountedAt(abs); ok {
		return "", userErrorf("%s is already mounted (%s %s): unmount it first with 'ampfs unmount %s'", abs, fstype, src, mnt)
	}
	return abs, nil
}

// mountedAt reports whether something is mounted at path, from
// /proc/self/mountinfo.
func mountedAt(path string) (fstype, source string, ok bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || unescapeMount(fields[4]) != path {
			continue
		}
		for i, fld := range fields {
			if fld == "-" && i+2 < len(fields) {
				fstype, source = fields[i+1], unescapeMount(fields[i+2])
			}
		}
		ok = true
	}
	return fstype, source, ok
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkBucket asks the server once, within timeout, so that a wrong
// endpoint, key or bucket name is one clear line instead of a mount whose
// every operation fails.
//
// With a prefix (the Amplify layout) it lists that prefix instead of
// asking about the bucket: Amplify's policies deny HeadBucket and listing
// the root, but allow listing the user's own trees.
func checkBucket(ctx context.Context, b store.Bucket, prefix, endpoint string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	if prefix == "" {
		err = b.Check(ctx)
	} else {
		_, err = b.List(ctx, store.ListInput{Prefix: prefix, MaxKeys: 1})
	}
	if err == nil {
		return nil
	}
	where := endpoint
	if where == "" {
		where = "the default S3 endpoint"
	}
	code := ""
	var oe *store.OpError
	if errors.As(err, &oe) && oe.Code != "" {
		code = " (" + oe.Code + ")"
	}
	switch {
	case errors.Is(err, store.ErrNoSuchBucket):
		return userErrorf("bucket %q does not exist at %s: check the name, or create it first", b.Name(), where)
	case errors.Is(err, store.ErrBadCredentials) && code == "":
		return userErrorf("found no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --profile / AWS_PROFILE")
	case errors.Is(err, store.ErrBadCredentials):
		return userErrorf("%s rejected the credentials%s: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)", where, code)
	case errors.Is(err, store.ErrAccessDenied):
		if prefix != "" {
			return userErrorf("listing %s in bucket %q was denied%s: check that --identity-id belongs to these credentials, and the bucket's policy", prefix, b.Name(), code)
		}
		return userErrorf("access to bucket %q denied%s: the credentials are valid but may not use this bucket; check its policy", b.Name(), code)
	case errors.Is(err, store.ErrCanceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, store.ErrUnavailable):
		return userErrorf("cannot reach S3 endpoint %s (%s): check --endpoint and that the server is running", where, rootCause(err, timeout))
	default:
		return userErrorf("checking bucket %q at %s: %v", b.Name(), where, err)
	}
}

// rootCause is the innermost error's text ("connect: connection refused"),
// which says more than the layers around it.
func rootCause(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within " + timeout.String()
	}
	for {
		var next error
		switch e := err.(type) {
		case interface{ Unwrap() error }:
			next = e.Unwrap()
		case interface{ Unwrap() []error }:
			if errs := e.Unwrap(); len(errs) > 0 {
				next = errs[len(errs)-1]
			}
		}
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
