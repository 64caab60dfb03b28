// Package cache sits between the file system (fs) and the object store
// (store): it owns the local copies of object data.
//
// Responsibilities:
//
//   - Staged files (staging.go): a file being written lives in a local
//     staging file under Options.StagingDir until it is uploaded. A Staged
//     counts its writes (a generation number), so an upload knows whether
//     the file changed while it was in flight and stays dirty if it did.
//   - Uploads (upload.go): one PutObject below Options.MultipartThreshold,
//     else a multipart upload whose parts go up in parallel, with a part
//     size that grows so a file reaches S3's 5 TiB limit within 10,000
//     parts. A failed multipart upload is aborted, never left behind.
//   - Reads (reader.go): ranged GETs pinned to the ETag the file was opened
//     with (If-Match), so a reader never mixes two versions of an object;
//     a sequential reader keeps one streaming GET open instead of paying a
//     request per kernel read.
//
// Not yet here (later work, see the issues): the LRU block cache, the
// upload journal and background write-back. Dirty data is only ever in a
// Staged, never in an evictable cache.
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
// them, and neither is held across a network call.
package cache
