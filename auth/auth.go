// Package auth decides who a mount acts as: the credentials that sign its
// S3 requests (an aws.CredentialsProvider) and, for the Amplify layout, the
// Cognito identity whose storage paths it shows.
//
// Today it has one source, the AWS SDK's default credential chain
// (environment, shared profile, SSO, container and instance roles), for
// operators and local servers. Cognito user-pool sign-in and identity-pool
// credentials come next (see the issues); they will return the same two
// things, so nothing above this package changes.
//
// Secrets never leave this package in a log line: only access key ids'
// presence and expiry times are ever logged.
//
// # Lock order
//
// No mutex of its own; credential caching is the SDK's aws.CredentialsCache.
package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
	"github.com/rs/zerolog"
)

// Options select the credential source. Each field documents its
// zero-value default.
type Options struct {
	// Profile is the shared config profile; "" means $AWS_PROFILE, else
	// "default".
	Profile string
	// Logger receives the SDK's own log lines (e.g. its instance-metadata
	// fallback warning) at debug level. Zero value: discarded.
	Logger zerolog.Logger
}

// Session is who the mount acts as.
type Session struct {
	// Credentials sign every request; cached and refreshed before expiry
	// by the SDK.
	Credentials aws.CredentialsProvider
	// Source says where the credentials come from, for logs ("env",
	// "profile NAME", ...); never a secret.
	Source string
}

// ErrNoCredentials means the chain found nothing to sign with.
var ErrNoCredentials = errors.New("no usable AWS credentials")

// Default returns a Session from the SDK's default chain. It sends no
// request unless the chain itself needs one (a role, SSO).
func Default(ctx context.Context, opts Options) (*Session, error) {
	load := []func(*config.LoadOptions) error{
		config.WithLogger(logging.LoggerFunc(func(_ logging.Classification, format string, v ...any) {
			opts.Logger.Debug().Str("component", "aws-sdk").Msgf(format, v...)
		})),
	}
	if opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(opts.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Credentials == nil {
		return nil, ErrNoCredentials
	}
	src := "default chain"
	if opts.Profile != "" {
		src = "profile " + opts.Profile
	}
	return &Session{Credentials: cfg.Credentials, Source: src}, nil
}
