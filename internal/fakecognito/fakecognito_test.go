package fakecognito

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentity"
	idtypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentity/types"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/ampfs/ampfs/auth/srp"
)

// clock is a settable time for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	srv   *Server
	clock *clock
	idp   *cip.Client
	ident *cognitoidentity.Client
}

// These operations are unsigned in the real service too, hence anonymous
// credentials.
func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	clk := &clock{t: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	srv := Start(t, opts)
	o := srv.Options()
	return &fixture{
		srv:   srv,
		clock: clk,
		idp: cip.New(cip.Options{
			Region:       o.Region,
			BaseEndpoint: aws.String(srv.URL),
			Credentials:  aws.AnonymousCredentials{},
		}),
		ident: cognitoidentity.New(cognitoidentity.Options{
			Region:       o.Region,
			BaseEndpoint: aws.String(srv.URL),
			Credentials:  aws.AnonymousCredentials{},
		}),
	}
}

var alice = User{
	Username:   "alice",
	Password:   "alice-Passw0rd!",
	IdentityID: "us-east-1:11111111-1111-4111-8111-111111111111",
	AccessKey:  "alice-access",
	SecretKey:  "alice-secret-0123456789",
	Groups:     []string{"editors"},
}

// srpSignIn runs USER_SRP_AUTH the way a client must: hash with
// USER_ID_FOR_SRP and answer with the challenge's USERNAME.
func (f *fixture) srpSignIn(ctx context.Context, name, password string) (*cip.RespondToAuthChallengeOutput, error) {
	c, err := srp.NewClient(f.srv.Options().UserPoolID, rand.Reader)
	if err != nil {
		return nil, err
	}
	init, err := f.idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
		AuthFlow:       types.AuthFlowTypeUserSrpAuth,
		ClientId:       aws.String(f.srv.Options().ClientID),
		AuthParameters: map[string]string{"USERNAME": name, "SRP_A": c.SRPA()},
	})
	if err != nil {
		return nil, err
	}
	if init.ChallengeName != types.ChallengeNameTypePasswordVerifier {
		return nil, errors.New("unexpected challenge " + string(init.ChallengeName))
	}
	p := init.ChallengeParameters
	sig, ts, err := c.PasswordClaim(p["USER_ID_FOR_SRP"], password, p["SRP_B"], p["SALT"], p["SECRET_BLOCK"], time.Now())
	if err != nil {
		return nil, err
	}
	return f.idp.RespondToAuthChallenge(ctx, &cip.RespondToAuthChallengeInput{
		ChallengeName: types.ChallengeNameTypePasswordVerifier,
		ClientId:      aws.String(f.srv.Options().ClientID),
		Session:       init.Session,
		ChallengeResponses: map[string]string{
			"USERNAME":                    p["USERNAME"],
			"PASSWORD_CLAIM_SECRET_BLOCK": p["SECRET_BLOCK"],
			"PASSWORD_CLAIM_SIGNATURE":    sig,
			"TIMESTAMP":                   ts,
		},
	})
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSRPSignIn(t *testing.T) {
	f := newFixture(t, Options{TokenTTL: 5 * time.Second})
	f.srv.AddUser(alice)
	ctx := context.Background()

	// Several sign-ins, so padding of A, B, S, u and salt is exercised with
	// and without the top bit set.
	for range 4 {
		out, err := f.srpSignIn(ctx, "alice", alice.Password)
		if err != nil {
			t.Fatal(err)
		}
		res := out.AuthenticationResult
		if res == nil || aws.ToString(res.IdToken) == "" || aws.ToString(res.AccessToken) == "" || aws.ToString(res.RefreshToken) == "" {
			t.Fatalf("AuthenticationResult = %+v", res)
		}
		if res.ExpiresIn != 5 || aws.ToString(res.TokenType) != "Bearer" {
			t.Errorf("ExpiresIn %d, TokenType %q", res.ExpiresIn, aws.ToString(res.TokenType))
		}
		c := jwtClaims(t, aws.ToString(res.IdToken))
		o := f.srv.Options()
		want := map[string]any{
			"cognito:username": "alice",
			"iss":              "https://cognito-idp.us-east-1.amazonaws.com/" + o.UserPoolID,
			"aud":              o.ClientID,
			"token_use":        "id",
			"exp":              float64(f.clock.Now().Unix() + 5),
			"iat":              float64(f.clock.Now().Unix()),
		}
		for k, v := range want {
			if c[k] != v {
				t.Errorf("id token %s = %v, want %v", k, c[k], v)
			}
		}
		if g, _ := c["cognito:groups"].([]any); len(g) != 1 || g[0] != "editors" {
			t.Errorf("cognito:groups = %v", c["cognito:groups"])
		}
		if s, _ := c["sub"].(string); len(s) != 36 {
			t.Errorf("sub = %v", c["sub"])
		}
	}
	if got := f.srv.Calls("InitiateAuth"); got != 4 {
		t.Errorf("Calls(InitiateAuth) = %d", got)
	}
	if got := f.srv.Calls("AWSCognitoIdentityProviderService.RespondToAuthChallenge"); got != 4 {
		t.Errorf("Calls(RespondToAuthChallenge) = %d", got)
	}
	if got := f.srv.Requests(); len(got) != 8 || got[0] != "AWSCognitoIdentityProviderService.InitiateAuth" {
		t.Errorf("Requests() = %v", got)
	}
}

func TestSRPSignInWithEmailAlias(t *testing.T) {
	// Amplify's loginWith email: the username is a UUID, people type their
	// email, and the SRP hash must use USER_ID_FOR_SRP, not the email.
	f := newFixture(t, Options{})
	u := alice
	u.Username = "0b5c1f9e-2a1d-4c3b-9e8f-7a6b5c4d3e2f"
	u.Email = "alice@example.com"
	f.srv.AddUser(u)
	out, err := f.srpSignIn(context.Background(), "alice@example.com", u.Password)
	if err != nil {
		t.Fatal(err)
	}
	if c := jwtClaims(t, aws.ToString(out.AuthenticationResult.IdToken)); c["cognito:username"] != u.Username || c["email"] != u.Email {
		t.Errorf("claims %v", c)
	}

	// Hashing the typed email instead of USER_ID_FOR_SRP fails.
	ctx := context.Background()
	c, _ := srp.NewClient(f.srv.Options().UserPoolID, rand.Reader)
	init, err := f.idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
		AuthFlow:       types.AuthFlowTypeUserSrpAuth,
		ClientId:       aws.String(f.srv.Options().ClientID),
		AuthParameters: map[string]string{"USERNAME": u.Email, "SRP_A": c.SRPA()},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := init.ChallengeParameters
	if p["USER_ID_FOR_SRP"] != u.Username || p["USERNAME"] != u.Username {
		t.Fatalf("challenge parameters %v", p)
	}
	sig, ts, err := c.PasswordClaim(u.Email, u.Password, p["SRP_B"], p["SALT"], p["SECRET_BLOCK"], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.idp.RespondToAuthChallenge(ctx, &cip.RespondToAuthChallengeInput{
		ChallengeName: types.ChallengeNameTypePasswordVerifier,
		ClientId:      aws.String(f.srv.Options().ClientID),
		ChallengeResponses: map[string]string{
			"USERNAME": u.Email, "PASSWORD_CLAIM_SECRET_BLOCK": p["SECRET_BLOCK"],
			"PASSWORD_CLAIM_SIGNATURE": sig, "TIMESTAMP": ts,
		},
	})
	var na *types.NotAuthorizedException
	if !errors.As(err, &na) {
		t.Fatalf("err = %v, want NotAuthorizedException", err)
	}
}

func TestSignInErrors(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		user     string
		password string
		check    func(error) bool
		message  string
	}{
		{"wrong password", Options{}, "alice", "nope", isErr[*types.NotAuthorizedException], "Incorrect username or password."},
		{"unknown user", Options{}, "mallory", "x", isErr[*types.UserNotFoundException], "User does not exist."},
		{"unknown user, existence errors prevented", Options{PreventUserExistenceErrors: true}, "mallory", "x", isErr[*types.NotAuthorizedException], "Incorrect username or password."},
		{"unconfirmed", Options{}, "uma", "uma-Passw0rd!", isErr[*types.UserNotConfirmedException], "User is not confirmed."},
		{"unconfirmed, wrong password", Options{}, "uma", "nope", isErr[*types.NotAuthorizedException], "Incorrect username or password."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts)
			f.srv.AddUser(alice)
			f.srv.AddUser(User{Username: "uma", Password: "uma-Passw0rd!", Unconfirmed: true})
			_, err := f.srpSignIn(context.Background(), tt.user, tt.password)
			if !tt.check(err) {
				t.Fatalf("err = %v (%T)", err, err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("err = %v, want message %q", err, tt.message)
			}
		})
	}
}

func isErr[E error](err error) bool {
	var e E
	return errors.As(err, &e)
}

func TestPasswordVerifierChecks(t *testing.T) {
	f := newFixture(t, Options{})
	f.srv.AddUser(alice)
	ctx := context.Background()
	o := f.srv.Options()
	start := func() (*srp.Client, map[string]string) {
		c, _ := srp.NewClient(o.UserPoolID, rand.Reader)
		init, err := f.idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
			AuthFlow: types.AuthFlowTypeUserSrpAuth, ClientId: aws.String(o.ClientID),
			AuthParameters: map[string]string{"USERNAME": "alice", "SRP_A": c.SRPA()},
		})
		if err != nil {
			t.Fatal(err)
		}
		return c, init.ChallengeParameters
	}
	respond := func(r map[string]string) error {
		_, err := f.idp.RespondToAuthChallenge(ctx, &cip.RespondToAuthChallengeInput{
			ChallengeName: types.ChallengeNameTypePasswordVerifier, ClientId: aws.String(o.ClientID),
			ChallengeResponses: r,
		})
		return err
	}

	// A timestamp other than the one signed fails.
	c, p := start()
	sig, ts, _ := c.PasswordClaim(p["USER_ID_FOR_SRP"], alice.Password, p["SRP_B"], p["SALT"], p["SECRET_BLOCK"], time.Now())
	other := srp.FormatTimestamp(time.Now().Add(-time.Hour))
	if err := respond(map[string]string{"USERNAME": "alice", "PASSWORD_CLAIM_SECRET_BLOCK": p["SECRET_BLOCK"], "PASSWORD_CLAIM_SIGNATURE": sig, "TIMESTAMP": other}); !isErr[*types.NotAuthorizedException](err) {
		t.Errorf("other timestamp: err = %v", err)
	}
	// The challenge was used up by that attempt.
	if err := respond(map[string]string{"USERNAME": "alice", "PASSWORD_CLAIM_SECRET_BLOCK": p["SECRET_BLOCK"], "PASSWORD_CLAIM_SIGNATURE": sig, "TIMESTAMP": ts}); !isErr[*types.NotAuthorizedException](err) {
		t.Errorf("reused challenge: err = %v", err)
	}
	// A missing response parameter is an InvalidParameterException.
	if err := respond(map[string]string{"USERNAME": "alice", "PASSWORD_CLAIM_SECRET_BLOCK": p["SECRET_BLOCK"], "PASSWORD_CLAIM_SIGNATURE": sig}); !isErr[*types.InvalidParameterException](err) {
		t.Errorf("no TIMESTAMP: err = %v", err)
	}
	// An expired challenge fails.
	c, p = start()
	sig, ts, _ = c.PasswordClaim(p["USER_ID_FOR_SRP"], alice.Password, p["SRP_B"], p["SALT"], p["SECRET_BLOCK"], time.Now())
	f.clock.Advance(challengeTTL)
	err := respond(map[string]string{"USERNAME": "alice", "PASSWORD_CLAIM_SECRET_BLOCK": p["SECRET_BLOCK"], "PASSWORD_CLAIM_SIGNATURE": sig, "TIMESTAMP": ts})
	if !isErr[*types.NotAuthorizedException](err) || !strings.Contains(err.Error(), "session is expired") {
		t.Errorf("expired challenge: err = %v", err)
	}
	// A bad SRP_A and an unknown client.
	_, err = f.idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
		AuthFlow: types.AuthFlowTypeUserSrpAuth, ClientId: aws.String(o.ClientID),
		AuthParameters: map[string]string{"USERNAME": "alice", "SRP_A": "0"},
	})
	if !isErr[*types.InvalidParameterException](err) {
		t.Errorf("SRP_A 0: err = %v", err)
	}
	_, err = f.idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
		AuthFlow: types.AuthFlowTypeUserSrpAuth, ClientId: aws.String("someone-else"),
		AuthParameters: map[string]string{"USERNAME": "alice", "SRP_A": "5"},
	})
	if !isErr[*types.ResourceNotFoundException](err) {
		t.Errorf("unknown client: err = %v", err)
	}
}

func TestUserPasswordAuth(t *testing.T) {
	ctx := context.Background()
	in := func(f *fixture, password string) *cip.InitiateAuthInput {
		return &cip.InitiateAuthInput{
			AuthFlow: types.AuthFlowTypeUserPasswordAuth, ClientId: aws.String(f.srv.Options().ClientID),
			AuthParameters: map[string]string{"USERNAME": "alice", "PASSWORD": password},
		}
	}

	off := newFixture(t, Options{})
	off.srv.AddUser(alice)
	_, err := off.idp.InitiateAuth(ctx, in(off, alice.Password))
	if !isErr[*types.InvalidParameterException](err) || !strings.Contains(err.Error(), "USER_PASSWORD_AUTH flow not enabled for this client") {
		t.Errorf("disabled: err = %v", err)
	}

	on := newFixture(t, Options{AllowPasswordAuth: true})
	on.srv.AddUser(alice)
	out, err := on.idp.InitiateAuth(ctx, in(on, alice.Password))
	if err != nil || out.AuthenticationResult == nil {
		t.Fatalf("enabled: %v, %+v", err, out)
	}
	if _, err := on.idp.InitiateAuth(ctx, in(on, "wrong")); !isErr[*types.NotAuthorizedException](err) {
		t.Errorf("wrong password: err = %v", err)
	}
}

func TestNewPasswordRequired(t *testing.T) {
	f := newFixture(t, Options{AllowPasswordAuth: true})
	u := alice
	u.MustChangePassword = true
	f.srv.AddUser(u)
	ctx := context.Background()
	o := f.srv.Options()

	out, err := f.srpSignIn(ctx, "alice", u.Password)
	if err != nil {
		t.Fatal(err)
	}
	if out.ChallengeName != types.ChallengeNameTypeNewPasswordRequired || aws.ToString(out.Session) == "" || out.AuthenticationResult != nil {
		t.Fatalf("got %+v", out)
	}
	if out.ChallengeParameters["USER_ID_FOR_SRP"] != "alice" || out.ChallengeParameters["requiredAttributes"] != "[]" {
		t.Errorf("ChallengeParameters %v", out.ChallengeParameters)
	}
	answer := func(session *string, pw string) (*cip.RespondToAuthChallengeOutput, error) {
		return f.idp.RespondToAuthChallenge(ctx, &cip.RespondToAuthChallengeInput{
			ChallengeName:      types.ChallengeNameTypeNewPasswordRequired,
			ClientId:           aws.String(o.ClientID),
			Session:            session,
			ChallengeResponses: map[string]string{"USERNAME": "alice", "NEW_PASSWORD": pw},
		})
	}
	// Too short: the policy refuses, and the session is used up.
	if _, err := answer(out.Session, "short"); !isErr[*types.InvalidPasswordException](err) {
		t.Fatalf("short password: err = %v", err)
	}
	out, err = f.srpSignIn(ctx, "alice", u.Password)
	if err != nil {
		t.Fatal(err)
	}
	const newPassword = "n3w-Passw0rd!"
	done, err := answer(out.Session, newPassword)
	if err != nil {
		t.Fatal(err)
	}
	if done.AuthenticationResult == nil || aws.ToString(done.AuthenticationResult.RefreshToken) == "" {
		t.Fatalf("got %+v", done)
	}
	if _, err := f.srpSignIn(ctx, "alice", u.Password); !isErr[*types.NotAuthorizedException](err) {
		t.Errorf("old password: err = %v", err)
	}
	if out, err := f.srpSignIn(ctx, "alice", newPassword); err != nil || out.AuthenticationResult == nil {
		t.Errorf("new password: %v, %+v", err, out)
	}
	if _, err := answer(aws.String("bogus"), newPassword); !isErr[*types.NotAuthorizedException](err) {
		t.Errorf("bogus session: err = %v", err)
	}
}

func TestRefreshAndRevoke(t *testing.T) {
	f := newFixture(t, Options{TokenTTL: 2 * time.Second})
	f.srv.AddUser(alice)
	ctx := context.Background()
	o := f.srv.Options()
	out, err := f.srpSignIn(ctx, "alice", alice.Password)
	if err != nil {
		t.Fatal(err)
	}
	refresh := aws.ToString(out.AuthenticationResult.RefreshToken)
	refreshWith := func(flow types.AuthFlowType, tok string) (*cip.InitiateAuthOutput, error) {
		return f.idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
			AuthFlow: flow, ClientId: aws.String(o.ClientID),
			AuthParameters: map[string]string{"REFRESH_TOKEN": tok},
		})
	}

	f.clock.Advance(10 * time.Second)
	for _, flow := range []types.AuthFlowType{types.AuthFlowTypeRefreshTokenAuth, types.AuthFlowTypeRefreshToken} {
		r, err := refreshWith(flow, refresh)
		if err != nil {
			t.Fatalf("%s: %v", flow, err)
		}
		res := r.AuthenticationResult
		if res.RefreshToken != nil {
			t.Errorf("%s gave a new refresh token", flow)
		}
		c := jwtClaims(t, aws.ToString(res.IdToken))
		if c["exp"] != float64(f.clock.Now().Unix()+2) || c["auth_time"] == c["iat"] {
			t.Errorf("%s: claims %v", flow, c)
		}
		// The new access token works.
		if _, err := f.idp.GetUser(ctx, &cip.GetUserInput{AccessToken: res.AccessToken}); err != nil {
			t.Errorf("GetUser: %v", err)
		}
	}
	if _, err := refreshWith(types.AuthFlowTypeRefreshTokenAuth, "garbage"); !isErr[*types.NotAuthorizedException](err) {
		t.Errorf("unknown refresh token: err = %v", err)
	}

	// RevokeToken, as `ampfs logout` does it.
	if _, err := f.idp.RevokeToken(ctx, &cip.RevokeTokenInput{Token: aws.String(refresh), ClientId: aws.String(o.ClientID)}); err != nil {
		t.Fatal(err)
	}
	_, err = refreshWith(types.AuthFlowTypeRefreshTokenAuth, refresh)
	if !isErr[*types.NotAuthorizedException](err) || !strings.Contains(err.Error(), "Refresh Token has been revoked") {
		t.Errorf("after RevokeToken: err = %v", err)
	}
	if _, err := f.idp.GetUser(ctx, &cip.GetUserInput{AccessToken: out.AuthenticationResult.AccessToken}); !isErr[*types.NotAuthorizedException](err) {
		t.Errorf("GetUser after revoke: err = %v", err)
	}

	// RevokeRefreshTokens, as an administrator's global sign-out.
	out, err = f.srpSignIn(ctx, "alice", alice.Password)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.RevokeRefreshTokens("alice")
	_, err = refreshWith(types.AuthFlowTypeRefreshTokenAuth, aws.ToString(out.AuthenticationResult.RefreshToken))
	if !isErr[*types.NotAuthorizedException](err) || !strings.Contains(err.Error(), "Refresh Token has been revoked") {
		t.Errorf("after RevokeRefreshTokens: err = %v", err)
	}
	// Revoking an access token is refused as the service refuses it.
	_, err = f.idp.RevokeToken(ctx, &cip.RevokeTokenInput{Token: out.AuthenticationResult.AccessToken, ClientId: aws.String(o.ClientID)})
	if !isErr[*types.UnsupportedTokenTypeException](err) {
		t.Errorf("revoke access token: err = %v", err)
	}
}

func TestGetUser(t *testing.T) {
	f := newFixture(t, Options{TokenTTL: 3 * time.Second})
	u := alice
	u.Email = "alice@example.com"
	f.srv.AddUser(u)
	ctx := context.Background()
	out, err := f.srpSignIn(ctx, "alice", u.Password)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.idp.GetUser(ctx, &cip.GetUserInput{AccessToken: out.AuthenticationResult.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(got.Username) != "alice" || !slices.ContainsFunc(got.UserAttributes, func(a types.AttributeType) bool {
		return aws.ToString(a.Name) == "email" && aws.ToString(a.Value) == u.Email
	}) {
		t.Errorf("GetUser = %+v", got)
	}
	if _, err := f.idp.GetUser(ctx, &cip.GetUserInput{AccessToken: out.AuthenticationResult.IdToken}); !isErr[*types.NotAuthorizedException](err) {
		t.Errorf("id token as access token: err = %v", err)
	}
	f.clock.Advance(3 * time.Second)
	if _, err := f.idp.GetUser(ctx, &cip.GetUserInput{AccessToken: out.AuthenticationResult.AccessToken}); !isErr[*types.NotAuthorizedException](err) {
		t.Errorf("expired: err = %v", err)
	}
}

func TestIdentityPool(t *testing.T) {
	f := newFixture(t, Options{TokenTTL: 2 * time.Second, CredentialsTTL: 5 * time.Second})
	f.srv.AddUser(alice)
	bob := User{Username: "bob", Password: "bob-Passw0rd!", IdentityID: "us-east-1:22222222-2222-4222-8222-222222222222", AccessKey: "bob-access", SecretKey: "bob-secret"}
	f.srv.AddUser(bob)
	ctx := context.Background()
	o := f.srv.Options()

	out, err := f.srpSignIn(ctx, "alice", alice.Password)
	if err != nil {
		t.Fatal(err)
	}
	logins := map[string]string{f.srv.ProviderName(): aws.ToString(out.AuthenticationResult.IdToken)}
	if want := "cognito-idp.us-east-1.amazonaws.com/" + o.UserPoolID; f.srv.ProviderName() != want {
		t.Errorf("ProviderName() = %q, want %q", f.srv.ProviderName(), want)
	}
	id, err := f.ident.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(o.IdentityPoolID), Logins: logins})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(id.IdentityId) != alice.IdentityID {
		t.Fatalf("IdentityId = %q", aws.ToString(id.IdentityId))
	}
	creds, err := f.ident.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: id.IdentityId, Logins: logins})
	if err != nil {
		t.Fatal(err)
	}
	c := creds.Credentials
	if aws.ToString(c.AccessKeyId) != alice.AccessKey || aws.ToString(c.SecretKey) != alice.SecretKey {
		t.Errorf("credentials %s / %s", aws.ToString(c.AccessKeyId), aws.ToString(c.SecretKey))
	}
	// versitygw rejects session tokens, so there is none.
	if aws.ToString(c.SessionToken) != "" {
		t.Errorf("SessionToken = %q, want empty", aws.ToString(c.SessionToken))
	}
	if want := f.clock.Now().Add(5 * time.Second); c.Expiration == nil || !c.Expiration.Equal(want) {
		t.Errorf("Expiration = %v, want %v", c.Expiration, want)
	}

	// Alice's token does not open Bob's identity.
	_, err = f.ident.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String(bob.IdentityID), Logins: logins})
	if !isErr[*idtypes.NotAuthorizedException](err) {
		t.Errorf("other identity: err = %v", err)
	}
	// Nor does no token at all.
	_, err = f.ident.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String(alice.IdentityID)})
	if !isErr[*idtypes.NotAuthorizedException](err) {
		t.Errorf("no logins: err = %v", err)
	}
	// A token that is not ours, a foreign provider, an unknown pool.
	forged := map[string]string{f.srv.ProviderName(): "eyJhbGciOiJub25lIn0.e30."}
	if _, err := f.ident.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(o.IdentityPoolID), Logins: forged}); !isErr[*idtypes.NotAuthorizedException](err) {
		t.Errorf("forged token: err = %v", err)
	}
	foreign := map[string]string{"accounts.google.com": aws.ToString(out.AuthenticationResult.IdToken)}
	if _, err := f.ident.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(o.IdentityPoolID), Logins: foreign}); !isErr[*idtypes.NotAuthorizedException](err) {
		t.Errorf("foreign provider: err = %v", err)
	}
	if _, err := f.ident.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String("us-east-1:nope"), Logins: logins}); !isErr[*idtypes.ResourceNotFoundException](err) {
		t.Errorf("unknown pool: err = %v", err)
	}

	// The id token expires after TokenTTL; both calls then refuse it.
	f.clock.Advance(2 * time.Second)
	_, err = f.ident.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(o.IdentityPoolID), Logins: logins})
	if !isErr[*idtypes.NotAuthorizedException](err) || !strings.Contains(err.Error(), "Invalid login token. Token expired:") {
		t.Errorf("expired token, GetId: err = %v", err)
	}
	_, err = f.ident.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: id.IdentityId, Logins: logins})
	if !isErr[*idtypes.NotAuthorizedException](err) || !strings.Contains(err.Error(), "Token expired") {
		t.Errorf("expired token, GetCredentialsForIdentity: err = %v", err)
	}
	// A refreshed id token works again.
	r, err := f.idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
		AuthFlow: types.AuthFlowTypeRefreshTokenAuth, ClientId: aws.String(o.ClientID),
		AuthParameters: map[string]string{"REFRESH_TOKEN": aws.ToString(out.AuthenticationResult.RefreshToken)},
	})
	if err != nil {
		t.Fatal(err)
	}
	logins[f.srv.ProviderName()] = aws.ToString(r.AuthenticationResult.IdToken)
	if _, err := f.ident.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: id.IdentityId, Logins: logins}); err != nil {
		t.Errorf("refreshed token: %v", err)
	}
	if got := f.srv.Calls("GetCredentialsForIdentity"); got != 5 {
		t.Errorf("Calls(GetCredentialsForIdentity) = %d", got)
	}
}

func TestGuest(t *testing.T) {
	ctx := context.Background()
	const guestID = "us-east-1:99999999-9999-4999-8999-999999999999"

	off := newFixture(t, Options{})
	off.srv.SetGuest(guestID, "guest-access", "guest-secret")
	_, err := off.ident.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(off.srv.Options().IdentityPoolID)})
	if !isErr[*idtypes.NotAuthorizedException](err) || !strings.Contains(err.Error(), "Unauthenticated access is not supported") {
		t.Errorf("guests off: err = %v", err)
	}

	on := newFixture(t, Options{AllowGuest: true})
	on.srv.SetGuest(guestID, "guest-access", "guest-secret")
	id, err := on.ident.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(on.srv.Options().IdentityPoolID)})
	if err != nil || aws.ToString(id.IdentityId) != guestID {
		t.Fatalf("GetId = %v, %v", id, err)
	}
	creds, err := on.ident.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: id.IdentityId})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(creds.Credentials.AccessKeyId) != "guest-access" || aws.ToString(creds.Credentials.SecretKey) != "guest-secret" {
		t.Errorf("guest credentials %+v", creds.Credentials)
	}
	_, err = on.ident.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String("us-east-1:unknown")})
	if !isErr[*idtypes.ResourceNotFoundException](err) {
		t.Errorf("unknown identity: err = %v", err)
	}
}

func TestConcurrentSignIns(t *testing.T) {
	f := newFixture(t, Options{})
	f.srv.AddUser(alice)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := f.srpSignIn(context.Background(), "alice", alice.Password); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
