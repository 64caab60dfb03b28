package hook

import (
	"net/url"
	"strings"
	"time"

	"github.com/ampfs/ampfs/store"
)

// Event is the S3 event notification document, with the fields a Lambda
// trigger reads
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).
type Event struct {
	Records []Record `json:"Records"`
}

// Record is one event record.
type Record struct {
	EventVersion string   `json:"eventVersion"`
	EventSource  string   `json:"eventSource"`
	AWSRegion    string   `json:"awsRegion"`
	EventTime    string   `json:"eventTime"`
	EventName    string   `json:"eventName"`
	S3           S3Entity `json:"s3"`
}

// S3Entity is a record's s3 field.
type S3Entity struct {
	S3SchemaVersion string   `json:"s3SchemaVersion"`
	Bucket          S3Bucket `json:"bucket"`
	Object          S3Object `json:"object"`
}

// S3Bucket names the bucket.
type S3Bucket struct {
	Name string `json:"name"`
	ARN  string `json:"arn"`
}

// S3Object describes the object. Key is URL-encoded as in S3's own events
// (a space is "+"); URLDecodedKey, an ampfs addition, is the key as it is.
type S3Object struct {
	Key           string `json:"key"`
	URLDecodedKey string `json:"urlDecodedKey"`
	Size          int64  `json:"size"`
	ETag          string `json:"eTag"`
	Sequencer     string `json:"sequencer,omitempty"`
}

// EventName is the only event ampfs reports: every completed upload,
// single or multipart, replaces the object the way a PutObject does.
const EventName = "ObjectCreated:Put"

// NewEvent builds the one-record event for a completed upload.
func NewEvent(bucket, region string, info store.ObjectInfo, now time.Time) Event {
	return Event{Records: []Record{{
		EventVersion: "2.1",
		EventSource:  "ampfs:s3",
		AWSRegion:    region,
		// S3 writes millisecond precision in UTC.
		EventTime: now.UTC().Format("2006-01-02T15:04:05.000Z"),
		EventName: EventName,
		S3: S3Entity{
			S3SchemaVersion: "1.0",
			Bucket:          S3Bucket{Name: bucket, ARN: "arn:aws:s3:::" + bucket},
			Object: S3Object{
				Key:           encodeKey(info.Key),
				URLDecodedKey: info.Key,
				Size:          info.Size,
				ETag:          info.ETag,
			},
		},
	}}}
}

// encodeKey encodes a key as S3 event notifications do: form encoding,
// but "/" kept (Lambda handlers decode with decodeURIComponent(key.replace(/\+/g, ' '))).
func encodeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.QueryEscape(p)
	}
	return strings.Join(parts, "/")
}
