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
//   - Empty segments ("a//b"), "." and ".." segments, and names longer than
//     255 bytes are not shown; they can never be reached through the mount,
//     so nothing outside Options.Prefix can be named either.
//
// # Errors
//
// Every operation returns errno(op, key, err): store.ErrNotFound becomes
// ENOENT, access errors EACCES, and anything unexpected EIO with an error
// log line naming the operation, key and cause. Nothing becomes ENOSYS.
//
// # Caching
//
// The kernel caches entries and attributes for Options.MetadataTTL. A
// directory keeps its last listing for the same time so the lookups that
// follow a readdir (ls -l) cost no requests; every change made through the
// mount drops the listings it affects.
//
// # Lock order
//
// Dir.mu and File.mu are never held together, and never across a network
// call; FS.mu (the set of dirty files) is a leaf taken under neither.
package fs
