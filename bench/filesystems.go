package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// A fileSystem is one column of the table: how to mount a bucket with it.
// Every mount is fresh: a new process, an empty cache dir, caches dropped.
type fileSystem struct {
	name   string
	fstype string // as /proc/self/mountinfo shows it
	// command returns the foreground mount command for bucket at mnt,
	// reaching S3 at endpoint and keeping its cache in cacheDir.
	command func(env *benchEnv, endpoint, bucket, mnt, cacheDir string) *exec.Cmd
}

// limitName is the column of direct aws-sdk-go-v2 transfers, no FUSE.
const limitName = "limit"

func fileSystems(env *benchEnv) []fileSystem {
	awsEnv := append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+accessKey,
		"AWS_SECRET_ACCESS_KEY="+secretKey,
		"AWS_REGION="+region,
	)
	rclone := func(mode string) fileSystem {
		return fileSystem{
			name:   "rclone-" + mode,
			fstype: "fuse.rclone",
			command: func(env *benchEnv, endpoint, bucket, mnt, cacheDir string) *exec.Cmd {
				cmd := exec.Command(env.Rclone, "mount", "bench:"+bucket, mnt,
					"--vfs-cache-mode", mode,
					"--cache-dir", cacheDir,
					// Upload at close, as ampfs and s3fs do; rclone's default
					// waits 5 s after the last close first.
					"--vfs-write-back", "0s",
					"--log-level", "NOTICE",
				)
				// The remote lives in environment variables only, so no
				// rclone.conf on this machine changes the result.
				cmd.Env = append(os.Environ(),
					"RCLONE_CONFIG="+filepath.Join(cacheDir, "..", "rclone.conf.empty"),
					"RCLONE_CONFIG_BENCH_TYPE=s3",
					"RCLONE_CONFIG_BENCH_PROVIDER=Other",
					"RCLONE_CONFIG_BENCH_ENDPOINT="+endpoint,
					"RCLONE_CONFIG_BENCH_REGION="+region,
					"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="+accessKey,
					"RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="+secretKey,
					"RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true",
				)
				return cmd
			},
		}
	}
	return []fileSystem{
		{
			name:   "ampfs",
			fstype: "fuse.ampfs",
			command: func(env *benchEnv, endpoint, bucket, mnt, cacheDir string) *exec.Cmd {
				cmd := exec.Command(env.Ampfs, "mount", "--layout", "raw", "--endpoint", endpoint, "--path-style",
					"--cache-dir", cacheDir, "--log-format", "json", bucket, mnt)
				cmd.Env = awsEnv
				return cmd
			},
		},
		{
			name:   "s3fs",
			fstype: "fuse.s3fs",
			command: func(env *benchEnv, endpoint, bucket, mnt, cacheDir string) *exec.Cmd {
				opts := []string{
					"url=" + endpoint,
					"use_path_request_style",
					"endpoint=" + region,
					"passwd_file=" + env.S3fsPasswd,
					"use_cache=" + cacheDir,
					"dbglevel=warn",
				}
				return exec.Command("s3fs", bucket, mnt, "-f", "-o", strings.Join(opts, ","))
			},
		},
		rclone("writes"),
		rclone("full"),
	}
}

// mounted is one running mount.
type mounted struct {
	fs  fileSystem
	mnt string
	p   *proc
	log string
}

// mountFresh mounts bucket with fs at mnt after emptying cacheDir and
// dropping the kernel's caches.
func mountFresh(ctx context.Context, env *benchEnv, fs fileSystem, endpoint, bucket, mnt, cacheDir, logPath string) (*mounted, error) {
	if err := forceUnmount(mnt); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(cacheDir); err != nil {
		return nil, err
	}
	for _, d := range []string{cacheDir, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := dropCaches(); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s mount %s at %s\n", time.Now().Format(time.RFC3339), bucket, mnt)
	cmd := fs.command(env, endpoint, bucket, mnt, cacheDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := startProc(fs.name, cmd)
	if err != nil {
		return nil, err
	}
	m := &mounted{fs: fs, mnt: mnt, p: p, log: logPath}
	if err := waitMounted(ctx, p, mnt, fs.fstype, 30*time.Second); err != nil {
		m.unmount()
		return nil, err
	}
	return m, nil
}

// unmount stops the file system by its PID (SIGTERM: each of them flushes
// and unmounts on it) and makes sure nothing stays mounted.
func (m *mounted) unmount() error {
	killed := m.p.stop(60 * time.Second)
	var errs []string
	if killed {
		errs = append(errs, fmt.Sprintf("%s (pid %d) ignored SIGTERM for 60s and was killed", m.fs.name, m.p.pid()))
	}
	if left, _ := mountsUnder(m.mnt); left[m.mnt] != "" {
		errs = append(errs, fmt.Sprintf("%s left %s mounted after exiting; detached it", m.fs.name, m.mnt))
		if err := forceUnmount(m.mnt); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
