#!/usr/bin/env bash
# make demo: a local S3 server (versitygw) with its data under ./.demo/data,
# a bucket "demo" laid out as Amplify Storage lays it out, mounted by ampfs
# at ./.demo/mnt in the foreground as the demo user (a made-up Cognito
# identity id), with the Amplify layout: public/, protected/<id>/, private/.
# Ctrl-C unmounts (after flushing) and stops the server.
#
# Environment: AMPFS_DEMO_PORT (default 7070, or the next free port).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo=$root/.demo
mnt=$demo/mnt
bucket=demo
# The demo user's identity, and a friend's whose files it sees (protected)
# or must never see (private).
me=us-east-1:0a0b0c0d-1111-4222-8333-444455556666
friend=us-east-1:f0f0f0f0-2222-4333-8444-555566667777

export AWS_ACCESS_KEY_ID=ampfs-demo
export AWS_SECRET_ACCESS_KEY=ampfs-demo-secret-key
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

mkdir -p "$demo/data" "$demo/cache" "$mnt"

mounted() { grep -q " $mnt fuse\.ampfs " /proc/mounts; }

# A demo killed with kill -9 can leave its mount behind.
if mounted; then
	echo "demo: unmounting a mount left at $mnt by an earlier demo"
	fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
fi

port=${AMPFS_DEMO_PORT:-7070}
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
	port=$((port + 1))
done
endpoint=http://127.0.0.1:$port

gw_pid=
ampfs_pid=
cleanup() {
	trap - EXIT INT TERM
	if [[ -n $ampfs_pid ]] && kill -0 "$ampfs_pid" 2>/dev/null; then
		kill -TERM "$ampfs_pid" 2>/dev/null || true
		wait "$ampfs_pid" 2>/dev/null || true
	fi
	if mounted; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" || true
	fi
	if [[ -n $gw_pid ]]; then
		kill "$gw_pid" 2>/dev/null || true
		wait "$gw_pid" 2>/dev/null || true
		echo "demo: S3 server stopped; its data stays in .demo/data"
	fi
}
trap cleanup EXIT
# The server and ampfs run in their own process groups (setsid), so Ctrl-C
# reaches only this script, which passes it to ampfs once (ampfs flushes
# and unmounts) and stops the server after ampfs has exited.
trap 'echo; echo "demo: stopping"; [[ -n $ampfs_pid ]] && kill -INT "$ampfs_pid" 2>/dev/null' INT TERM

setsid bin/versitygw --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" \
	--region "$AWS_REGION" --port "127.0.0.1:$port" posix "$demo/data" \
	>"$demo/versitygw.log" 2>&1 &
gw_pid=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	if ! kill -0 "$gw_pid" 2>/dev/null; then
		echo "demo: versitygw exited; see .demo/versitygw.log" >&2
		exit 1
	fi
	sleep 0.1
done

go build -o bin/mkbucket ./scripts/mkbucket
bin/mkbucket -endpoint "$endpoint" -bucket "$bucket" \
	-put "public/hello.txt=Hello from ampfs! This file is the S3 object s3://$bucket/public/hello.txt.
"
bin/mkbucket -endpoint "$endpoint" -bucket "$bucket" \
	-put "protected/$friend/shared.txt=A friend's protected file: every signed-in user may read it, only the friend may change it.
"
bin/mkbucket -endpoint "$endpoint" -bucket "$bucket" \
	-put "private/$friend/diary.txt=The friend's private file: no other user ever sees it.
"

cat <<MSG

demo: S3 server $endpoint (data in .demo/data), bucket "$bucket", mounting at .demo/mnt
as the Amplify user $me (Gen1 access levels).
In another terminal, in $root, try:

  ls -l .demo/mnt .demo/mnt/protected           # the three trees; your own id is always there
  cat .demo/mnt/public/hello.txt
  cat .demo/mnt/protected/$friend/shared.txt   # readable...
  echo hi > .demo/mnt/protected/$friend/shared.txt   # ...but Permission denied
  echo secret > .demo/mnt/private/note.txt      # stored as private/$me/note.txt
  mkdir .demo/mnt/public/docs && cp -rL /usr/share/common-licenses .demo/mnt/public/docs/
  diff -r /usr/share/common-licenses .demo/mnt/public/docs/common-licenses && echo same
  dd if=/dev/urandom of=.demo/mnt/private/big.bin bs=1M count=64    # a multipart upload
  ls -R .demo/data/$bucket          # the objects, as the server stores them

Press Ctrl-C here to unmount and stop the server.

MSG

setsid bin/ampfs mount --endpoint "$endpoint" --path-style --cache-dir "$demo/cache" \
	--layout amplify --identity-id "$me" "$bucket" "$mnt" &
ampfs_pid=$!
# wait returns early when a trapped signal arrives; wait until ampfs has
# finished flushing and unmounting, then take its exit status.
while kill -0 "$ampfs_pid" 2>/dev/null; do
	wait "$ampfs_pid" || true
done
status=0
wait "$ampfs_pid" || status=$?
ampfs_pid=
exit "$status"
