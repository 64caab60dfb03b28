package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentity"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/smithy-go/logging"
	"github.com/rs/zerolog"
)

// Pool names an Amplify app's Cognito setup: the user pool and app client
// users sign in to, and the identity pool that turns a sign-in (or a guest)
// into an identity id and AWS credentials.
type Pool struct {
	Region         string `json:"region"`
	UserPoolID     string `json:"user_pool_id"`     // us-east-1_AbCdEf
	ClientID       string `json:"client_id"`        // the app client (no secret: Amplify's are public)
	IdentityPoolID string `json:"identity_pool_id"` // us-east-1:uuid
	// Endpoints override the services' URLs (flags); "" leaves them to the
	// SDK, which also reads AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER and
	// AWS_ENDPOINT_URL_COGNITO_IDENTITY.
	UserPoolEndpoint     string `json:"user_pool_endpoint,omitempty"`
	IdentityPoolEndpoint string `json:"identity_pool_endpoint,omitempty"`
}

// Validate says what is missing, as a user can fix it.
func (p Pool) Validate(needUserPool bool) error {
	var missing []string
	if p.Region == "" {
		missing = append(missing, "region")
	}
	if needUserPool && p.UserPoolID == "" {
		missing = append(missing, "user pool id")
	}
	if needUserPool && p.ClientID == "" {
		missing = append(missing, "app client id")
	}
	if p.IdentityPoolID == "" {
		missing = append(missing, "identity pool id")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the Cognito settings lack %v: give --config amplify_outputs.json, or --user-pool-id, --client-id, --identity-pool-id and --region", missing)
	}
	return nil
}

// loginKey is the identity pool's name for this user pool's id tokens.
func (p Pool) loginKey() string {
	return "cognito-idp." + p.Region + ".amazonaws.com/" + p.UserPoolID
}

// clients are the two Cognito services' SDK clients. Their calls are
// unsigned (the user pool's auth APIs and the identity pool's GetId and
// GetCredentialsForIdentity take no AWS credentials).
type clients struct {
	idp *cip.Client
	id  *cognitoidentity.Client
}

func newClients(ctx context.Context, p Pool, log zerolog.Logger) (*clients, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(p.Region),
		config.WithCredentialsProvider(aws.AnonymousCredentials{}),
		config.WithLogger(logging.LoggerFunc(func(_ logging.Classification, format string, v ...any) {
			log.Debug().Str("component", "aws-sdk").Msgf(format, v...)
		})),
	)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return &clients{
		idp: cip.NewFromConfig(cfg, func(o *cip.Options) {
			if p.UserPoolEndpoint != "" {
				o.BaseEndpoint = aws.String(p.UserPoolEndpoint)
			}
		}),
		id: cognitoidentity.NewFromConfig(cfg, func(o *cognitoidentity.Options) {
			if p.IdentityPoolEndpoint != "" {
				o.BaseEndpoint = aws.String(p.IdentityPoolEndpoint)
			}
		}),
	}, nil
}

// Errors a sign-in can end with; each is one clear line for the user.
var (
	ErrWrongPassword   = errors.New("incorrect username or password")
	ErrUnknownUser     = errors.New("no such user in this user pool")
	ErrUnconfirmed     = errors.New("the user has not confirmed the account yet: confirm it with the code Cognito sent, then log in again")
	ErrSessionExpired  = errors.New("the stored sign-in has expired or was revoked: run 'ampfs login' again")
	ErrFlowNotEnabled  = errors.New("the app client does not allow this sign-in flow")
	ErrNeedNewPassword = errors.New("the user must choose a new password")
)

// timeNow is the clock; tests replace it.
var timeNow = time.Now
