#!/bin/sh
# ampfs --on-upload hook: for each new photos/NAME.jpg (or .jpeg, .png), make
# photos/thumbnails/NAME.webp, 200x200, with ImageMagick, through the mount.
#
# The event is on stdin (.Records[0].s3.object.urlDecodedKey); ampfs also
# sets AMPFS_KEY, AMPFS_BUCKET and AMPFS_MOUNTPOINT. The key is the path in
# the mount for --layout raw and for public/ and protected/ of the Amplify
# layout.
set -eu
key=${AMPFS_KEY:?}
case $key in
  */thumbnails/*|thumbnails/*) exit 0 ;;   # our own output: never a thumbnail of a thumbnail
  photos/*|*/photos/*) ;;
  *) exit 0 ;;
esac
case $key in
  *.jpg|*.jpeg|*.png|*.JPG|*.JPEG|*.PNG) ;;
  *) exit 0 ;;
esac
dir=${key%/*}
name=${key##*/}
src=$AMPFS_MOUNTPOINT/$key
dst=$AMPFS_MOUNTPOINT/$dir/thumbnails/${name%.*}.webp
mkdir -p "${dst%/*}"
convert "$src" -thumbnail '200x200^' -gravity center -extent 200x200 "$dst"
