package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/rs/zerolog"
)

// CognitoSession is a Session for an Amplify user or guest.
type CognitoSession struct {
	Session
	Username   string // "" for a guest
	IdentityID string
	Groups     []string // the user pool groups in the id token
	Guest      bool
	provider   *provider
}

// CredentialsExpire returns when the current credentials expire.
func (s *CognitoSession) CredentialsExpire() time.Time { return s.provider.Expiry() }

// Login signs in and returns the session to store.
func Login(ctx context.Context, p Pool, username, password string, o SignInOptions) (*StoredSession, error) {
	tokens, err := SignIn(ctx, p, username, password, o)
	if err != nil {
		return nil, err
	}
	if tokens.RefreshToken == "" {
		return nil, errors.New("the user pool returned no refresh token")
	}
	c, err := newClients(ctx, p, o.Logger)
	if err != nil {
		return nil, err
	}
	id, err := c.identityID(ctx, p, tokens.IDToken)
	if err != nil {
		return nil, err
	}
	return &StoredSession{Pool: p, Username: username, IdentityID: id, RefreshToken: tokens.RefreshToken, SignedIn: timeNow()}, nil
}

// Resume turns a stored session into credentials: it renews the id token
// with the refresh token at once, so a revoked or expired sign-in is one
// clear error at start-up rather than failures later.
func Resume(ctx context.Context, s *StoredSession, log zerolog.Logger) (*CognitoSession, error) {
	c, err := newClients(ctx, s.Pool, log)
	if err != nil {
		return nil, err
	}
	tokens, err := c.refresh(ctx, s.Pool, s.RefreshToken)
	if err != nil {
		return nil, err
	}
	cl, err := parseClaims(tokens.IDToken)
	if err != nil {
		return nil, err
	}
	id := s.IdentityID
	if id == "" {
		if id, err = c.identityID(ctx, s.Pool, tokens.IDToken); err != nil {
			return nil, err
		}
	}
	p := &provider{c: c, pool: s.Pool, log: log, ident: id, refTok: s.RefreshToken, tokens: tokens}
	return newCognitoSession(ctx, p, "cognito user "+s.Username, s.Username, cl.Groups)
}

// Guest returns the identity pool's unauthenticated identity.
func Guest(ctx context.Context, p Pool, log zerolog.Logger) (*CognitoSession, error) {
	if err := p.Validate(false); err != nil {
		return nil, err
	}
	c, err := newClients(ctx, p, log)
	if err != nil {
		return nil, err
	}
	id, err := c.identityID(ctx, p, "")
	if err != nil {
		return nil, fmt.Errorf("guest identity: %w", err)
	}
	return newCognitoSession(ctx, &provider{c: c, pool: p, log: log, guest: true, ident: id}, "cognito guest", "", nil)
}

func newCognitoSession(ctx context.Context, p *provider, source, user string, groups []string) (*CognitoSession, error) {
	cache := aws.NewCredentialsCache(p)
	// The first credentials now: a refused identity fails the mount, not
	// its first file operation.
	if _, err := cache.Retrieve(ctx); err != nil {
		return nil, err
	}
	return &CognitoSession{
		Session:    Session{Credentials: cache, Source: source},
		Username:   user,
		IdentityID: p.ident,
		Groups:     groups,
		Guest:      p.guest,
		provider:   p,
	}, nil
}

// Logout revokes the session's refresh token at Cognito and deletes its
// file. The file goes even when Cognito cannot be reached; the error says
// so.
func Logout(ctx context.Context, s *StoredSession, log zerolog.Logger) error {
	var revokeErr error
	if c, err := newClients(ctx, s.Pool, log); err != nil {
		revokeErr = err
	} else {
		revokeErr = c.revoke(ctx, s.Pool, s.RefreshToken)
	}
	if err := s.Delete(); err != nil {
		return err
	}
	if revokeErr != nil {
		return fmt.Errorf("signed out here, but Cognito did not revoke the token: %w", revokeErr)
	}
	return nil
}
