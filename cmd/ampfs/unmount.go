package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

func unmountCommand() *cli.Command {
	return &cli.Command{
		Name:      "unmount",
		Aliases:   []string{"umount"},
		Usage:     "unmount MOUNTPOINT; the mount process uploads what is staged and exits",
		ArgsUsage: "MOUNTPOINT",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lazy", Aliases: []string{"z"}, Usage: "detach now even if busy; finishes when the last file closes"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return userErrorf("unmount needs MOUNTPOINT: ampfs unmount [--lazy] MOUNTPOINT")
			}
			return unmount(c.Args().First(), c.Bool("lazy"))
		},
	}
}

func unmount(mnt string, lazy bool) error {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return userErrorf("%s: %v", mnt, err)
	}
	if _, _, ok := mountedAt(abs); !ok {
		return userErrorf("%s is not mounted", abs)
	}
	if lazy {
		return lazyUnmount(abs)
	}
	err = fuseUnmount(abs, false)
	if errors.Is(err, syscall.EBUSY) {
		return userErrorf("%s is busy: close the files and shells using it (see 'fuser -m %s'), or use --lazy", abs, abs)
	}
	return err
}

func lazyUnmount(mnt string) error { return fuseUnmount(mnt, true) }

// fuseUnmount uses fusermount3 where installed (it works for non-root
// users), else umount2(2) directly.
func fuseUnmount(mnt string, lazy bool) error {
	if path, err := exec.LookPath("fusermount3"); err == nil {
		args := []string{"-u"}
		if lazy {
			args = append(args, "-z")
		}
		var stderr bytes.Buffer
		cmd := exec.Command(path, append(args, mnt)...)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(stderr.String())
			if strings.Contains(msg, "busy") {
				return syscall.EBUSY
			}
			return userErrorf("unmount %s: %s", mnt, msg)
		}
		return nil
	}
	flags := 0
	if lazy {
		flags = syscall.MNT_DETACH
	}
	if err := syscall.Unmount(mnt, flags); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return err
		}
		return userErrorf("unmount %s: %v", mnt, err)
	}
	return nil
}
