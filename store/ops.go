package store

// S3 operation names, as OpError.Op carries them; the fake, the metrics
// decorator and the S3 implementation all label calls with these.
const (
	OpHeadBucket              = "HeadBucket"
	OpHeadObject              = "HeadObject"
	OpListObjectsV2           = "ListObjectsV2"
	OpGetObject               = "GetObject"
	OpPutObject               = "PutObject"
	OpDeleteObject            = "DeleteObject"
	OpCopyObject              = "CopyObject"
	OpCreateMultipartUpload   = "CreateMultipartUpload"
	OpUploadPart              = "UploadPart"
	OpUploadPartCopy          = "UploadPartCopy"
	OpCompleteMultipartUpload = "CompleteMultipartUpload"
	OpAbortMultipartUpload    = "AbortMultipartUpload"
)
