package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentity"
	citypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentity/types"
	"github.com/rs/zerolog"
)

// identityID asks the identity pool for the identity of an id token's
// user, or of a guest when idToken is empty.
func (c *clients) identityID(ctx context.Context, p Pool, idToken string) (string, error) {
	in := &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(p.IdentityPoolID)}
	if idToken != "" {
		in.Logins = map[string]string{p.loginKey(): idToken}
	}
	out, err := c.id.GetId(ctx, in)
	if err != nil {
		return "", identityError(err, p)
	}
	return aws.ToString(out.IdentityId), nil
}

func identityError(err error, p Pool) error {
	var notAuth *citypes.NotAuthorizedException
	if errors.As(err, &notAuth) {
		// The identity pool's own type (not the user pool's that
		// signInError knows): a login it does not accept.
		return fmt.Errorf("the identity pool %s refused the sign-in (%s): run 'ampfs login' again, or check that it trusts the user pool", p.IdentityPoolID, notAuth.ErrorMessage())
	}
	err = signInError(err, p)
	if errors.Is(err, ErrWrongPassword) {
		// The identity pool refusing a login means the token is stale or
		// the pool does not trust this user pool.
		return fmt.Errorf("the identity pool %s refused the sign-in: run 'ampfs login' again, or check that it trusts the user pool", p.IdentityPoolID)
	}
	return err
}

// provider is an aws.CredentialsProvider for one Cognito identity: the
// identity pool's temporary credentials, fetched again (after renewing the
// id token with the refresh token when needed) whenever the cache around it
// finds them about to expire.
//
// It is only used inside an aws.CredentialsCache, which never calls
// Retrieve concurrently; mu guards the tokens against readers (Expiry).
type provider struct {
	c      *clients
	pool   Pool
	log    zerolog.Logger
	guest  bool
	ident  string
	refTok string

	mu     sync.Mutex
	tokens *Tokens   // GUARDED_BY(mu); nil for guests
	expiry time.Time // GUARDED_BY(mu); of the last credentials
}

// idTokenMargin: an id token this close to expiry is renewed first, so
// GetCredentialsForIdentity never sees an expired login.
const idTokenMargin = 30 * time.Second

// Retrieve implements aws.CredentialsProvider.
func (p *provider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	in := &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String(p.ident)}
	if !p.guest {
		tok, err := p.idToken(ctx, false)
		if err != nil {
			return aws.Credentials{}, err
		}
		in.Logins = map[string]string{p.pool.loginKey(): tok}
	}
	out, err := p.c.id.GetCredentialsForIdentity(ctx, in)
	var notAuth *citypes.NotAuthorizedException
	if err != nil && !p.guest && errors.As(err, &notAuth) {
		// The pool found the id token expired after all (its clock, or
		// a token issued with seconds to live): renew it and ask once more.
		p.log.Debug().Str("reason", notAuth.ErrorMessage()).Msg("the identity pool refused the id token; renewing it")
		tok, rerr := p.idToken(ctx, true)
		if rerr != nil {
			return aws.Credentials{}, rerr
		}
		in.Logins = map[string]string{p.pool.loginKey(): tok}
		out, err = p.c.id.GetCredentialsForIdentity(ctx, in)
	}
	if err != nil {
		return aws.Credentials{}, identityError(err, p.pool)
	}
	if out.Credentials == nil {
		return aws.Credentials{}, errors.New("the identity pool returned no credentials")
	}
	exp := aws.ToTime(out.Credentials.Expiration)
	p.mu.Lock()
	p.expiry = exp
	p.mu.Unlock()
	p.log.Debug().Time("expires", exp).Msg("new credentials from the identity pool")
	return aws.Credentials{
		AccessKeyID:     aws.ToString(out.Credentials.AccessKeyId),
		SecretAccessKey: aws.ToString(out.Credentials.SecretKey),
		SessionToken:    aws.ToString(out.Credentials.SessionToken),
		Source:          "CognitoIdentity",
		CanExpire:       true,
		// Renew before the real expiry: a request signed now must still
		// be valid when it arrives, and a long upload's next part is
		// signed with fresh credentials.
		Expires: exp.Add(-margin(5*time.Minute, exp)),
	}, nil
}

// idToken returns an id token with time to live, renewed with the refresh
// token when it is close to expiry, or when force is set.
func (p *provider) idToken(ctx context.Context, force bool) (string, error) {
	p.mu.Lock()
	t := p.tokens
	p.mu.Unlock()
	if !force && t != nil && !timeNow().Add(margin(idTokenMargin, t.Expires)).After(t.Expires) {
		return t.IDToken, nil
	}
	nt, err := p.c.refresh(ctx, p.pool, p.refTok)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.tokens = nt
	p.mu.Unlock()
	p.log.Debug().Time("expires", nt.Expires).Msg("renewed the id token")
	return nt.IDToken, nil
}

// margin is how long before expiry to renew: max, or a fifth of the time
// left for short-lived credentials (tests use seconds).
func margin(max time.Duration, expiry time.Time) time.Duration {
	return min(max, time.Until(expiry)/5)
}

// Expiry returns when the last credentials expire.
func (p *provider) Expiry() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.expiry
}
