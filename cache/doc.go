// Package cache sits between the file system (fs) and the object store
// (store): it owns the local copies of object data.
//
// Responsibilities:
//
//   - Staged files (staging.go): a file being written lives in a local
//     staging file under Options.StagingDir until it is uploaded. A Staged
//     counts its writes (a generation number), so an upload knows whether
//     the file changed while it was in flight and stays dirty if it did.
//
//   - Uploads (upload.go): one PutObject below Options.MultipartThreshold,
//     else a multipart upload whose parts go up in parallel, with a part
//     size that grows so a file reaches S3's 5 TiB limit within 10,000
//     parts. A failed multipart upload is aborted, never left behind. A
//     file filled from an object remembers it and the ranges written or
//     truncated since; its upload copies the other ranges from the object
//     on the server (UploadPartCopy, if its ETag still matches) instead of
//     sending them (copyplan.go), and sends them after all if that fails.
//
//   - Reads (reader.go): ranged GETs pinned to the ETag the file was opened
//     with (If-Match), so a reader never mixes two versions of an object;
//     a sequential reader keeps one streaming GET open instead of paying a
//     request per kernel read.
//
//   - Blocks (blocks.go): clean object data in fixed-size blocks, in a
//     golang-lru cache bounded by Options.CacheSize, keyed by (key, ETag,
//     block) so a replaced object is never served stale; blocks evicted
//     from memory go to an optional on-disk cache (disk.go) with a hard
//     size bound.
//
//   - Whole files (whole.go): the disk cache also keeps whole objects as
//     raw files (for FUSE passthrough), under the same bound and LRU: an
//     uploaded staging file is adopted instead of deleted, and an object
//     whose blocks are all cached is assembled. A Fill reads from one.
//
//   - Write-back (writeback.go, journal.go): close commits a staged file
//     (a record appended to the journal's log and synced; a small file's
//     bytes go into the record, a larger staging file is fsynced first)
//     and upload workers send it; a restart resumes what the journal
//     holds.
//
// Dirty data is only ever in a Staged, never in an evictable cache.
//
// # Contexts
//
// Uploads run under the Cache's own context (Options.Context), not the
// caller's: an interrupted close(2) must not abort an upload that other
// handles of the same file share. Reads use the caller's context so an
// interrupted read stops its GET.
//
// # Lock order
//
// Staged.mu and Reader.mu are leaves: no other lock is taken while holding
// them, and neither is held across a network call. Cache.mu (blocks in
// flight) may be held while taking DiskCache.mu (prefetch's Contains);
// DiskCache.mu is a leaf, never held during file I/O. Cache.wmu (pending
// uploads) is taken alone, never with Cache.mu, and takes Staged.mu.
package cache
