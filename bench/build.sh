#!/usr/bin/env bash
# Builds what `make bench` runs into .bench/: the bench itself (from the work
# tree) and ampfs, from the committed HEAD alone (git archive) so the result
# names a revision and a colleague's rebuild of bin/ampfs during a long run
# changes nothing. If HEAD does not build by itself (a commit that needs
# uncommitted files), ampfs is built from the work tree instead and the
# report says so.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

mkdir -p .bench/bin
rm -rf .bench/src && mkdir -p .bench/src
git archive HEAD | tar -x -C .bench/src
rev=$(git rev-parse --short HEAD)
if (cd .bench/src && "$GO" build -o ../bin/ampfs ./cmd/ampfs); then
	echo "$rev" >.bench/ampfs.rev
else
	echo "bench-build: HEAD ($rev) does not build by itself; building ampfs from the work tree" >&2
	"$GO" build -o .bench/bin/ampfs ./cmd/ampfs
	echo "$rev + uncommitted work tree (HEAD alone did not build)" >.bench/ampfs.rev
fi
"$GO" build -o .bench/bench ./bench
