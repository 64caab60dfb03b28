package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/ampfs/ampfs/cache"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "list the uploads of a mount that have not finished: queued, uploading, failed (and retrying)",
		ArgsUsage: "MOUNTPOINT",
		Action: func(c *cli.Context) error {
			ups, err := uploadsOf(c.Args().First())
			if err != nil {
				return err
			}
			if len(ups) == 0 {
				fmt.Println("nothing pending: every closed file is on the server")
				return nil
			}
			for _, u := range ups {
				line := fmt.Sprintf("%-9s %8s  %s", u.State, humanize.IBytes(uint64(u.Size)), u.Key)
				if u.Err != "" {
					line += fmt.Sprintf("  (attempt %d failed: %s)", u.Attempts, u.Err)
				}
				fmt.Println(line)
			}
			return nil
		},
	}
}

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:      "sync",
		Usage:     "wait until the mount's pending uploads (or those of PATHs) are on the server",
		ArgsUsage: "MOUNTPOINT [PATH...]",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "timeout", Value: 0, Usage: "give up after this long (0: wait as long as it takes)"},
		},
		Action: runSync,
	}
}

// runSync polls the mount's status until nothing (of interest) is pending.
// An upload that failed makes it exit non-zero, naming the file, once
// every other upload has finished or failed too.
func runSync(c *cli.Context) error {
	mnt := c.Args().First()
	var keys []string
	for _, p := range c.Args().Tail() {
		keys = append(keys, strings.TrimPrefix(filepath.Clean(p), filepath.Clean(mnt)+"/"))
	}
	interesting := func(ups []cache.UploadStatus) []cache.UploadStatus {
		if len(keys) == 0 {
			return ups
		}
		var out []cache.UploadStatus
		for _, u := range ups {
			for _, k := range keys {
				if strings.HasSuffix(u.Key, k) {
					out = append(out, u)
				}
			}
		}
		return out
	}
	ups, err := uploadsOf(mnt)
	if err != nil {
		return err
	}
	ups = interesting(ups)
	var total int64
	for _, u := range ups {
		total += u.Size
	}
	bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription("uploading"), progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(), progressbar.OptionSetVisibility(total > 0 && isTerminal(os.Stderr)))
	deadline := time.Time{}
	if d := c.Duration("timeout"); d > 0 {
		deadline = time.Now().Add(d)
	}
	for {
		var left int64
		failed := map[string]string{}
		busy := 0
		for _, u := range ups {
			left += u.Size
			if u.State == cache.Failed {
				failed[u.Key] = u.Err
			} else {
				busy++
			}
		}
		_ = bar.Set64(max(total-left, 0))
		if busy == 0 {
			_ = bar.Finish()
			if len(failed) == 0 {
				return nil
			}
			for k, e := range failed {
				fmt.Fprintf(os.Stderr, "ampfs: upload of %s failed (it is retried): %s\n", k, e)
			}
			return userErrorf("%d upload(s) failed; they stay queued and are retried: see 'ampfs status %s'", len(failed), mnt)
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return userErrorf("%d upload(s) still pending after %s", busy, c.Duration("timeout"))
		}
		time.Sleep(100 * time.Millisecond)
		if ups, err = uploadsOf(mnt); err != nil {
			return err
		}
		ups = interesting(ups)
	}
}

// uploadsOf asks the mount at mnt for its pending uploads.
func uploadsOf(mnt string) ([]cache.UploadStatus, error) {
	if mnt == "" {
		return nil, userErrorf("which mount? give its MOUNTPOINT")
	}
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return nil, userErrorf("%s: %v", mnt, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	resp, err := controlCall(controlSocketPath(abs), controlRequest{Op: "status"})
	if err != nil {
		return nil, userErrorf("no ampfs mount answers at %s (%v): is it mounted?", abs, err)
	}
	if resp.Error != "" {
		return nil, userErrorf("%s", resp.Error)
	}
	return resp.Uploads, nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
