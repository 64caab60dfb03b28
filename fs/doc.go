// Package fs serves an object store as a FUSE file system with go-fuse's
// node API (imported as fusefs, since this package is also called fs).
//
// Responsibilities: the namespace (which key a path means, which keys are
// shown as which names), the FUSE operations (api_check.go lists them all),
// and the error policy (errno.go: the one place store and cache errors become
// errno values). Data lives in package cache; fs never touches S3 itself
// except through store.Bucket for metadata operations (list, head, copy,
// delete), and never imports the AWS SDK.
//
// # Namespace (raw layout)
//
// A directory at path p is the key prefix Options.Prefix+p+"/"; it exists
// when a "p/" marker object exists or any key starts with that prefix. A
// file is the object with exactly the key Options.Prefix+p. Rules for keys
// that cannot be file names:
//
//   - A name that is both a file and a directory ("a" and "a/b") is shown as
//     the directory; the file is hidden (s3fs and mountpoint-s3 do the same).
//   - Empty segments ("a//b", a leading "/"), "." and ".." segments, and
//     names longer than 255 bytes are not shown, nor anything below them;
//     they can never be reached through the mount, so nothing outside
//     Options.Prefix can be named either. The directories above such a
//     segment are shown ("a" for "a//b").
//   - A key ending in "/" is a directory marker whatever its body: the
//     directory is shown, the body is not.
//
// namespace_model_test.go checks these rules against a model of them on
// random buckets of such keys.
//
// # POSIX metadata (meta.go)
//
// Mode (with the file type bits), owner, group and mtime are stored as
// s3fs stores them: x-amz-meta-mode/-uid/-gid (decimal) and -mtime
// (seconds, "sec.nsec" when there are nanoseconds); user.* xattrs in
// x-amz-meta-xattr (URL-encoded JSON of base64 values). chmod, chown and
// utimens of a clean file are a metadata-only copy of the object onto
// itself; a file with data not uploaded yet carries them in its upload.
// Objects without them show Options.FileMode/DirMode, UID/GID and
// LastModified. In the Amplify layout the rules cap the stored mode.
// Symlinks are objects whose mode says S_IFLNK and whose body is the
// target; directories keep theirs in the "dir/" marker.
//
// # Metadata without a HEAD per entry
//
// A listing carries size, ETag and LastModified but no user metadata.
// Metadata read by a HEAD or written here is remembered by key and ETag
// (and LastModified), so listings of known objects are exact at no cost.
// For objects nobody has seen, a readdir sends no HEAD: their entries go
// out without attributes, and the first stat of one of them reads the
// metadata of all the unknown entries of its kind (files, or directories)
// in that listing, 32 HEADs at a time, when there are at most 256 of them
// (metaHeadBudget; meta_lazy.go). So find and du cost their LIST pages
// plus one HEAD per directory marker; ls -l, cp -a and rsync of a small
// directory see stored modes, times and symlinks; a large directory of
// unseen objects shows the defaults and LastModified, and `ls -l` of
// 2,500 objects costs its 3 LIST pages (measured: 4 LIST and 1 HEAD, the
// directory's own lookup). Such an entry shows its stored metadata once
// it is looked up on its own (after the listing's TTL), opened for a
// change, or its xattrs read. Until a symlink another client wrote is
// stat'ed, getdents calls it a regular file (find -type l misses it).
// We chose this over a HEAD per entry (s3fs's way: 2,500 HEADs for that
// ls) and over a side index object (not written by s3fs, so never
// trustworthy for a shared bucket).
//
// # Renames
//
// Files: server-side copy, then delete (objects over CopyObject's 5 GiB
// limit are copied in parts with UploadPartCopy, copy.go). Directories:
// every key below is copied, then deleted, under a journal record
// (rename.go) that the next mount finishes. Between Amplify trees
// (different owners) a rename is EXDEV and mv(1) copies. Hard links and
// mknod are not supported (ENOTSUP or EPERM from go-fuse's defaults, never
// ENOSYS).
//
// # Errors
//
// Every operation returns errno(op, key, err): store.ErrNotFound becomes
// ENOENT, access errors EACCES, and anything unexpected EIO with an error
// log line naming the operation, key and cause. Nothing becomes ENOSYS.
// A signal to the caller (a FUSE interrupt) makes only reads of data fail
// with EINTR; every other operation runs to its end (uninterrupted in
// errno.go), so close, stat, readdir and fsync never fail with EINTR and a change
// is never reported failed after the server made it.
//
// # Caching
//
// The kernel caches entries and attributes for Options.MetadataTTL. A
// directory keeps its last listing for the same time so the lookups that
// follow a readdir (ls -l) cost no requests; every change made through the
// mount drops the listings it affects.
//
// A read-only open of a file whose version has a whole local copy in the
// disk cache is handed to the kernel with FUSE passthrough (passthrough.go
// says when, and what every other open of that inode gets meanwhile).
//
// # Lock order
//
// Dir.mu and File.mu are never held together, and never across a network
// call; FS.mu (the set of dirty files) is a leaf taken under neither.
// File.mu is held across the ioctls that register and unregister a
// passthrough backing file (local, never the network), so that no two
// opens of a file pick its backing file at once.
package fs
