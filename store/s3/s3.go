// Package s3store implements store.Bucket with aws-sdk-go-v2, against AWS S3
// or any S3-compatible server.
//
// It is the only package that talks to the SDK; every SDK error becomes a
// store error in translate.go and nowhere else. Retries are the SDK's
// standard retryer (exponential backoff with jitter on throttling, 5xx and
// network errors); bodies are io.ReadSeekers so a retried upload rewinds
// them.
//
// # Where it does more than one request
//
//   - Check follows a failed HeadBucket with ListObjectsV2 (MaxKeys 1):
//     HEAD responses carry no error body, so a 403 cannot tell bad
//     credentials from a denied permission, but the list error's code can.
//   - Get of length 0, or a ranged Get answered with InvalidRange, asks
//     HeadObject, because S3 answers any range of an empty object with 416
//     while the contract promises an empty body.
//   - Copy first heads the source, then copies with x-amz-copy-source-if-match
//     on its ETag, so the returned info (size, metadata) is exactly that of
//     the object copied.
//
// # Local checks
//
// Requests S3 would reject are rejected before they are sent, so the error
// does not depend on the server and no body is read for nothing: keys
// empty or over store.MaxKeyLength (versitygw only limits each path
// segment), Put over store.MaxPutSize, part numbers outside
// 1..store.MaxParts, parts over store.MaxPartSize, an empty part list, an
// empty or negative copy source range, and a copy of an object onto itself
// that keeps its metadata. The minimum part
// size is left to the server (AWS and versitygw enforce it at completion),
// because it cannot be judged without trusting Part.Size.
//
// # Results without a server time
//
// PutObject and CompleteMultipartUpload responses carry no Last-Modified;
// their ObjectInfo uses the response's Date header (the server's clock), so
// it may differ from a later Head by a second. CompleteMultipartUpload
// reports neither content type nor metadata; Head the object for those.
package s3store

import (
	"context"
	"fmt"
	"github.com/aws/smithy-go/logging"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/ampfs/ampfs/store"
)

// DefaultRegion is used when neither Options nor the SDK configuration
// names one; S3-compatible servers mostly accept any region.
const DefaultRegion = "us-east-1"

// Options configure New. The zero value of every field but Bucket is a
// sensible default.
type Options struct {
	// Bucket is the bucket name; required.
	Bucket string
	// Endpoint is the S3 endpoint URL, e.g. http://127.0.0.1:7070; ""
	// lets the SDK choose (AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).
	Endpoint string
	// Region; "" means the SDK configuration's (AWS_REGION, profile), or
	// DefaultRegion if that names none.
	Region string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY instead of
	// BUCKET.ENDPOINT/KEY, which most non-AWS servers need.
	PathStyle bool
	// Credentials; nil means the SDK's default chain (environment, shared
	// profile, SSO, container and instance roles).
	Credentials aws.CredentialsProvider
	// HTTPClient; nil means a client tuned for many parallel ranged GETs
	// to one host (honouring AWS_CA_BUNDLE). A caller's client is used as
	// it is.
	HTTPClient aws.HTTPClient
	// Profile is the shared config profile; "" means $AWS_PROFILE or
	// "default".
	Profile string
	// MaxAttempts bounds the attempts per request, first one included; 0
	// means the SDK's default (3).
	MaxAttempts int
	// Logger receives debug lines about failed requests; the zero value
	// logs nothing. Nothing secret is ever logged.
	Logger zerolog.Logger
	// OnAttempt, when set, is called before each HTTP attempt with the S3
	// operation name and the attempt number (1 for the first, more for
	// retries), for metrics. It must not block.
	OnAttempt func(op string, attempt int)
}

// Bucket is a store.Bucket backed by an S3 bucket.
type Bucket struct {
	client *s3.Client
	bucket string
	log    zerolog.Logger
}

var _ store.Bucket = (*Bucket)(nil)

// New builds the S3 client. It sends no request; use Check to see whether
// the bucket is reachable. Errors wrap store.ErrInvalidArgument (bad options
// or SDK configuration, e.g. a profile that does not exist).
func New(ctx context.Context, opts Options) (*Bucket, error) {
	if opts.Bucket == "" {
		return nil, store.Errorf(store.ErrInvalidArgument, "New", "", "no bucket name")
	}
	load := []func(*config.LoadOptions) error{
		// The SDK configures its own kind of client (AWS_CA_BUNDLE, ...);
		// a caller's client is set on the S3 client below, as it is.
		config.WithHTTPClient(newHTTPClient()),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				if opts.MaxAttempts > 0 {
					o.MaxAttempts = opts.MaxAttempts
				}
			})
		}),
		// Since early 2025 the SDK by default adds CRC checksums (some as
		// aws-chunked trailers) to every upload and validates them on
		// download; S3-compatible servers support this unevenly. Send them
		// only where an API requires them, as SDKs did before.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	if opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(opts.Profile))
	}
	// The SDK's own log lines (e.g. its IMDS fallback warning) go to our
	// logger at debug level instead of straight to stderr.
	load = append(load, config.WithLogger(sdkLogger(opts.Logger)))
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, &store.OpError{Op: "LoadConfig", Kind: store.ErrInvalidArgument,
			Err: fmt.Errorf("loading the AWS SDK configuration: %w", err)}
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Credentials != nil {
		cfg.Credentials = credentialsProvider{cfg.Credentials}
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		if opts.HTTPClient != nil {
			o.HTTPClient = opts.HTTPClient
		}
		if opts.OnAttempt != nil {
			o.APIOptions = append(o.APIOptions, attemptCounter(opts.OnAttempt))
		}
	})
	opts.Logger.Debug().Str("bucket", opts.Bucket).Str("endpoint", opts.Endpoint).
		Str("region", cfg.Region).Bool("path_style", opts.PathStyle).Msg("s3 client ready")
	return &Bucket{client: client, bucket: opts.Bucket, log: opts.Logger}, nil
}

// newHTTPClient allows many idle connections per host: the file system
// reads with parallel ranged GETs against one endpoint, and Go's default of
// 2 idle connections per host would make most of them dial anew.
func newHTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			// Fail over to a retry soon when an endpoint does not answer.
			d.Timeout = 10 * time.Second
		}).
		WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConns = 256
			tr.MaxIdleConnsPerHost = 64
			tr.IdleConnTimeout = 90 * time.Second
		})
}

// Name implements store.Bucket.
func (b *Bucket) Name() string { return b.bucket }

// Client returns the underlying SDK client, for what the store.Bucket
// interface does not cover (presigned URLs).
func (b *Bucket) Client() *s3.Client { return b.client }

// credentialsProvider marks failures to obtain credentials (no keys
// configured, a missing profile, an unreachable role endpoint), so that
// translate can tell them from an unreachable S3 endpoint: the SDK gives
// them no type of their own.
type credentialsProvider struct{ aws.CredentialsProvider }

// credentialsError is a failure of the credential chain.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "no usable credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

func (p credentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.CredentialsProvider.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		return c, &credentialsError{err}
	}
	return c, err
}

func sdkLogger(log zerolog.Logger) logging.Logger {
	return logging.LoggerFunc(func(_ logging.Classification, format string, v ...any) {
		log.Debug().Str("component", "aws-sdk").Msgf(format, v...)
	})
}
