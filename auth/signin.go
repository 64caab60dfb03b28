package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/rs/zerolog"

	"github.com/ampfs/ampfs/auth/srp"
)

// Tokens are a user pool sign-in's result.
type Tokens struct {
	IDToken, AccessToken string
	// RefreshToken is empty after a refresh (Cognito does not rotate it).
	RefreshToken string
	// Expires is when the id token stops being accepted.
	Expires time.Time
}

// SignInOptions qualify SignIn. Each field documents its zero value.
type SignInOptions struct {
	// PasswordAuth signs in with USER_PASSWORD_AUTH (the password goes to
	// Cognito) instead of USER_SRP_AUTH (it never leaves this machine);
	// only when the app client allows it. Zero: SRP.
	PasswordAuth bool
	// NewPassword is asked for when the pool requires a new password at
	// first sign-in (NEW_PASSWORD_REQUIRED). Nil: ErrNeedNewPassword.
	NewPassword func() (string, error)
	// Logger receives the SDK's debug lines. Zero: none.
	Logger zerolog.Logger
}

// maxChallenges bounds the challenge round trips of one sign-in.
const maxChallenges = 4

// SignIn signs username in to the pool's user pool.
func SignIn(ctx context.Context, p Pool, username, password string, o SignInOptions) (*Tokens, error) {
	if err := p.Validate(true); err != nil {
		return nil, err
	}
	c, err := newClients(ctx, p, o.Logger)
	if err != nil {
		return nil, err
	}
	var out *cip.InitiateAuthOutput
	var client *srp.Client
	if o.PasswordAuth {
		out, err = c.idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
			AuthFlow:       types.AuthFlowTypeUserPasswordAuth,
			ClientId:       aws.String(p.ClientID),
			AuthParameters: map[string]string{"USERNAME": username, "PASSWORD": password},
		})
	} else {
		if client, err = srp.NewClient(p.UserPoolID, rand.Reader); err != nil {
			return nil, err
		}
		out, err = c.idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
			AuthFlow:       types.AuthFlowTypeUserSrpAuth,
			ClientId:       aws.String(p.ClientID),
			AuthParameters: map[string]string{"USERNAME": username, "SRP_A": client.SRPA()},
		})
	}
	if err != nil {
		return nil, signInError(err, p)
	}
	result, name, session, params := out.AuthenticationResult, out.ChallengeName, out.Session, out.ChallengeParameters
	for range maxChallenges {
		if result != nil {
			return tokensFrom(result)
		}
		var responses map[string]string
		switch name {
		case types.ChallengeNameTypePasswordVerifier:
			if client == nil {
				return nil, errors.New("the user pool asked for an SRP proof after a password sign-in")
			}
			user := params["USER_ID_FOR_SRP"]
			sig, ts, err := client.PasswordClaim(user, password, params["SRP_B"], params["SALT"], params["SECRET_BLOCK"], timeNow())
			if err != nil {
				return nil, fmt.Errorf("SRP: %w", err)
			}
			responses = map[string]string{
				"USERNAME":                    user,
				"PASSWORD_CLAIM_SECRET_BLOCK": params["SECRET_BLOCK"],
				"PASSWORD_CLAIM_SIGNATURE":    sig,
				"TIMESTAMP":                   ts,
			}
		case types.ChallengeNameTypeNewPasswordRequired:
			if o.NewPassword == nil {
				return nil, ErrNeedNewPassword
			}
			np, err := o.NewPassword()
			if err != nil {
				return nil, err
			}
			user := username
			if id := params["USER_ID_FOR_SRP"]; id != "" {
				user = id // the pool's own name for the user (an email sign-in's UUID)
			}
			responses = map[string]string{"USERNAME": user, "NEW_PASSWORD": np}
		default:
			return nil, fmt.Errorf("the user pool asks for %s, which ampfs does not support yet: sign in once in the app, then try again", name)
		}
		resp, err := c.idp.RespondToAuthChallenge(ctx, &cip.RespondToAuthChallengeInput{
			ChallengeName:      name,
			ClientId:           aws.String(p.ClientID),
			ChallengeResponses: responses,
			Session:            session,
		})
		if err != nil {
			return nil, signInError(err, p)
		}
		result, name, session, params = resp.AuthenticationResult, resp.ChallengeName, resp.Session, resp.ChallengeParameters
	}
	return nil, fmt.Errorf("sign-in did not finish after %d challenges", maxChallenges)
}

// refresh gets new id and access tokens with a refresh token.
func (c *clients) refresh(ctx context.Context, p Pool, refreshToken string) (*Tokens, error) {
	out, err := c.idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
		AuthFlow:       types.AuthFlowTypeRefreshTokenAuth,
		ClientId:       aws.String(p.ClientID),
		AuthParameters: map[string]string{"REFRESH_TOKEN": refreshToken},
	})
	if err != nil {
		var na *types.NotAuthorizedException
		if errors.As(err, &na) {
			return nil, ErrSessionExpired
		}
		return nil, signInError(err, p)
	}
	if out.AuthenticationResult == nil {
		return nil, fmt.Errorf("refreshing the sign-in: Cognito asked for %s", out.ChallengeName)
	}
	return tokensFrom(out.AuthenticationResult)
}

// revoke ends a refresh token (and the tokens issued from it) at Cognito.
func (c *clients) revoke(ctx context.Context, p Pool, refreshToken string) error {
	_, err := c.idp.RevokeToken(ctx, &cip.RevokeTokenInput{ClientId: aws.String(p.ClientID), Token: aws.String(refreshToken)})
	if err != nil {
		return signInError(err, p)
	}
	return nil
}

func tokensFrom(r *types.AuthenticationResultType) (*Tokens, error) {
	t := &Tokens{IDToken: aws.ToString(r.IdToken), AccessToken: aws.ToString(r.AccessToken), RefreshToken: aws.ToString(r.RefreshToken)}
	if t.IDToken == "" {
		return nil, errors.New("the user pool returned no id token")
	}
	claims, err := parseClaims(t.IDToken)
	if err != nil {
		return nil, err
	}
	t.Expires = time.Unix(claims.Exp, 0)
	return t, nil
}

// claims are the id token's fields ampfs reads. The token came from
// Cognito over TLS, and only Cognito and S3 (through the identity pool)
// act on it, so it is decoded, not verified, here.
type claims struct {
	Exp      int64    `json:"exp"`
	Username string   `json:"cognito:username"`
	Groups   []string `json:"cognito:groups"`
}

func parseClaims(jwt string) (*claims, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("the id token is not a JWT")
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("the id token's payload: %w", err)
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("the id token's payload: %w", err)
	}
	return &c, nil
}

// signInError turns Cognito's errors into the ones a user can act on.
func signInError(err error, p Pool) error {
	var (
		notAuth     *types.NotAuthorizedException
		notFound    *types.UserNotFoundException
		unconfirmed *types.UserNotConfirmedException
		reset       *types.PasswordResetRequiredException
		invalid     *types.InvalidParameterException
		noPool      *types.ResourceNotFoundException
		badPassword *types.InvalidPasswordException
	)
	switch {
	case errors.As(err, &notAuth):
		if strings.Contains(strings.ToLower(notAuth.ErrorMessage()), "revoked") {
			return ErrSessionExpired
		}
		return ErrWrongPassword
	case errors.As(err, &notFound):
		return ErrUnknownUser
	case errors.As(err, &unconfirmed):
		return ErrUnconfirmed
	case errors.As(err, &reset):
		return errors.New("the user must reset the password first (in the app, or with the forgotten-password flow)")
	case errors.As(err, &badPassword):
		return fmt.Errorf("the new password is not accepted: %s", badPassword.ErrorMessage())
	case errors.As(err, &invalid) && strings.Contains(invalid.ErrorMessage(), "not enabled"):
		return fmt.Errorf("%w (%s): try without --password-auth, or enable the flow on the app client", ErrFlowNotEnabled, invalid.ErrorMessage())
	case errors.As(err, &noPool):
		return fmt.Errorf("the user pool or app client is unknown (%s): check the ids and --region", noPool.ErrorMessage())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	}
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) {
		return fmt.Errorf("cannot reach Cognito in %s: %w", p.Region, err)
	}
	return err
}
