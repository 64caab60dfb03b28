#!/usr/bin/env bash
# Fails if a test left an ampfs mount behind: any fuse.ampfs mount under the
# temporary directory, where tests make their mountpoints (t.TempDir).
# Mounts elsewhere (a running `make demo` in .demo/mnt, a benchmark in
# .bench/) are not the tests' and are left alone.
set -euo pipefail
tmp=$(realpath -m "${TMPDIR:-/tmp}")
left=$(awk -v tmp="$tmp/" '$3 == "fuse.ampfs" && index($2, tmp) == 1 {print $2}' /proc/mounts)
if [[ -n $left ]]; then
	echo "check-mounts: tests left ampfs mounts behind (remove with: fusermount3 -u DIR, or umount -l DIR):" >&2
	echo "$left" >&2
	exit 1
fi
