package fakecognito

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"math"
	"time"

	"github.com/ampfs/ampfs/auth/srp"
)

// Messages the user pool sends, word for word.
const (
	msgBadPassword     = "Incorrect username or password."
	msgNoUser          = "User does not exist."
	msgNotConfirmed    = "User is not confirmed."
	msgRefreshRevoked  = "Refresh Token has been revoked"
	msgRefreshInvalid  = "Invalid Refresh Token"
	msgSessionExpired  = "Invalid session for the user, session is expired."
	msgSessionInvalid  = "Invalid session for the user."
	msgPasswordAuthOff = "USER_PASSWORD_AUTH flow not enabled for this client"
)

type initiateAuthInput struct {
	AuthFlow       string
	AuthParameters map[string]string
	ClientId       string
}

type respondToAuthChallengeInput struct {
	ChallengeName      string
	ChallengeResponses map[string]string
	ClientId           string
	Session            string
}

// authOutput is the output of InitiateAuth and RespondToAuthChallenge.
type authOutput struct {
	AuthenticationResult *authResult       `json:",omitempty"`
	ChallengeName        string            `json:",omitempty"`
	ChallengeParameters  map[string]string `json:",omitempty"`
	Session              string            `json:",omitempty"`
}

type authResult struct {
	AccessToken  string
	ExpiresIn    int64
	IdToken      string
	RefreshToken string `json:",omitempty"`
	TokenType    string
}

func (s *Server) checkClient(clientID string) error {
	if clientID != s.opts.ClientID {
		return errf("ResourceNotFoundException", "User pool client %s does not exist.", clientID)
	}
	return nil
}

func required(params map[string]string, names ...string) error {
	for _, n := range names {
		if params[n] == "" {
			return errf("InvalidParameterException", "Missing required parameter %s", n)
		}
	}
	return nil
}

// lookupLocked finds a user by username or email alias.
// REQUIRES: s.mu held.
func (s *Server) lookupLocked(name string) *userState {
	if u := s.users[name]; u != nil {
		return u
	}
	return s.users[s.aliases[name]]
}

func (s *Server) initiateAuth(in *initiateAuthInput) (*authOutput, error) {
	if err := s.checkClient(in.ClientId); err != nil {
		return nil, err
	}
	p := in.AuthParameters
	switch in.AuthFlow {
	case "USER_SRP_AUTH":
		if err := required(p, "USERNAME", "SRP_A"); err != nil {
			return nil, err
		}
		return s.startSRP(p["USERNAME"], p["SRP_A"])
	case "USER_PASSWORD_AUTH":
		if !s.opts.AllowPasswordAuth {
			return nil, errf("InvalidParameterException", msgPasswordAuthOff)
		}
		if err := required(p, "USERNAME", "PASSWORD"); err != nil {
			return nil, err
		}
		return s.passwordAuth(p["USERNAME"], p["PASSWORD"])
	case "REFRESH_TOKEN_AUTH", "REFRESH_TOKEN":
		if err := required(p, "REFRESH_TOKEN"); err != nil {
			return nil, err
		}
		return s.refreshAuth(p["REFRESH_TOKEN"])
	case "":
		return nil, errf("InvalidParameterException", "Missing required parameter AuthFlow")
	default:
		return nil, errf("InvalidParameterException", "%s flow not enabled for this client", in.AuthFlow)
	}
}

// unknownUser is the answer for a name that is neither a username nor an
// alias.
func (s *Server) unknownUser() error {
	if s.opts.PreventUserExistenceErrors {
		return errf("NotAuthorizedException", msgBadPassword)
	}
	return errf("UserNotFoundException", msgNoUser)
}

func (s *Server) startSRP(name, srpA string) (*authOutput, error) {
	s.mu.Lock()
	u := s.lookupLocked(name)
	var username, salt, verifier string
	if u != nil {
		username, salt, verifier = u.Username, u.salt, u.verifier
	}
	s.mu.Unlock()

	decoy := u == nil
	if decoy {
		if !s.opts.PreventUserExistenceErrors {
			return nil, s.unknownUser()
		}
		// The service answers an unknown user with a challenge that no
		// password can meet, so the reply does not tell who exists.
		var err error
		username = name
		salt, verifier, err = srp.NewVerifier(s.opts.UserPoolID, name, b64(randomBytes(16)), rand.Reader)
		if err != nil {
			return nil, errf("InvalidParameterException", "Invalid USERNAME")
		}
	}
	sess, err := srp.NewServerSession(s.opts.UserPoolID, username, salt, verifier, srpA, rand.Reader)
	if err != nil {
		return nil, errf("InvalidParameterException", "Invalid SRP_A")
	}
	// The service's SECRET_BLOCK is an encrypted blob holding its side of the
	// exchange; here it is a random handle of about the same size.
	block := b64(randomBytes(1024))
	ch := &srpChallenge{session: sess, expires: s.opts.Now().Add(challengeTTL)}
	if !decoy {
		ch.username = username
	}
	s.mu.Lock()
	s.srpByBlock[block] = ch
	s.mu.Unlock()
	return &authOutput{
		ChallengeName: "PASSWORD_VERIFIER",
		ChallengeParameters: map[string]string{
			"SALT":            salt,
			"SRP_B":           sess.SRPB(),
			"SECRET_BLOCK":    block,
			"USERNAME":        username,
			"USER_ID_FOR_SRP": username,
		},
	}, nil
}

func (s *Server) passwordAuth(name, password string) (*authOutput, error) {
	s.mu.Lock()
	u := s.lookupLocked(name)
	var username string
	ok := false
	if u != nil {
		username = u.Username
		ok = subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) == 1
	}
	s.mu.Unlock()
	if u == nil {
		return nil, s.unknownUser()
	}
	if !ok {
		return nil, errf("NotAuthorizedException", msgBadPassword)
	}
	return s.signedIn(username)
}

func (s *Server) respondToAuthChallenge(in *respondToAuthChallengeInput) (*authOutput, error) {
	if err := s.checkClient(in.ClientId); err != nil {
		return nil, err
	}
	r := in.ChallengeResponses
	switch in.ChallengeName {
	case "PASSWORD_VERIFIER":
		if err := required(r, "USERNAME", "PASSWORD_CLAIM_SECRET_BLOCK", "PASSWORD_CLAIM_SIGNATURE", "TIMESTAMP"); err != nil {
			return nil, err
		}
		return s.passwordVerifier(r)
	case "NEW_PASSWORD_REQUIRED":
		if err := required(r, "USERNAME", "NEW_PASSWORD"); err != nil {
			return nil, err
		}
		if in.Session == "" {
			return nil, errf("InvalidParameterException", "Missing required parameter Session")
		}
		return s.newPassword(in.Session, r["USERNAME"], r["NEW_PASSWORD"])
	case "":
		return nil, errf("InvalidParameterException", "Missing required parameter ChallengeName")
	default:
		return nil, errf("InvalidParameterException", "Unsupported challenge %s", in.ChallengeName)
	}
}

func (s *Server) passwordVerifier(r map[string]string) (*authOutput, error) {
	block := r["PASSWORD_CLAIM_SECRET_BLOCK"]
	now := s.opts.Now()
	s.mu.Lock()
	ch := s.srpByBlock[block]
	// One answer per challenge: a retry must start over with InitiateAuth.
	delete(s.srpByBlock, block)
	var u *userState
	if ch != nil && ch.username != "" {
		u = s.lookupLocked(r["USERNAME"])
	}
	s.mu.Unlock()

	switch {
	case ch == nil:
		return nil, errf("NotAuthorizedException", msgSessionInvalid)
	case !now.Before(ch.expires):
		return nil, errf("NotAuthorizedException", msgSessionExpired)
	case ch.username == "":
		return nil, errf("NotAuthorizedException", msgBadPassword)
	case u == nil || u.Username != ch.username:
		// USERNAME must name the user the challenge was for: the
		// USERNAME challenge parameter, or an alias of that user.
		return nil, errf("NotAuthorizedException", msgBadPassword)
	}
	if _, err := time.Parse(srp.TimestampLayout, r["TIMESTAMP"]); err != nil {
		return nil, errf("InvalidParameterException", "TIMESTAMP is not of the form %q", srp.TimestampLayout)
	}
	if !ch.session.Verify(block, r["TIMESTAMP"], r["PASSWORD_CLAIM_SIGNATURE"]) {
		return nil, errf("NotAuthorizedException", msgBadPassword)
	}
	return s.signedIn(ch.username)
}

// signedIn is what follows a correct password: an error for an unconfirmed
// user, NEW_PASSWORD_REQUIRED, or tokens.
func (s *Server) signedIn(username string) (*authOutput, error) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[username]
	switch {
	case u == nil:
		return nil, s.unknownUser()
	case u.Unconfirmed:
		return nil, errf("UserNotConfirmedException", msgNotConfirmed)
	case u.MustChangePassword:
		session := b64(randomBytes(96))
		s.newPwBySes[session] = &newPwChallenge{username: u.Username, expires: now.Add(challengeTTL)}
		attrs := map[string]string{}
		if u.Email != "" {
			attrs["email"] = u.Email
		}
		attrsJSON, _ := json.Marshal(attrs)
		return &authOutput{
			ChallengeName: "NEW_PASSWORD_REQUIRED",
			Session:       session,
			ChallengeParameters: map[string]string{
				"USER_ID_FOR_SRP":    u.Username,
				"requiredAttributes": "[]",
				"userAttributes":     string(attrsJSON),
			},
		}, nil
	}
	refresh := b64(randomBytes(96))
	jti := newUUID()
	s.refresh[refresh] = &refreshState{username: u.Username, originJTI: jti, authTime: now}
	res := s.tokensLocked(u, jti, now, now)
	res.RefreshToken = refresh
	return &authOutput{AuthenticationResult: res}, nil
}

func (s *Server) newPassword(session, name, password string) (*authOutput, error) {
	now := s.opts.Now()
	s.mu.Lock()
	ch := s.newPwBySes[session]
	delete(s.newPwBySes, session)
	u := s.lookupLocked(name)
	s.mu.Unlock()
	switch {
	case ch == nil || !now.Before(ch.expires):
		return nil, errf("NotAuthorizedException", msgSessionExpired)
	case u == nil || u.Username != ch.username:
		return nil, errf("NotAuthorizedException", msgBadPassword)
	}
	if len(password) < 8 {
		return nil, errf("InvalidPasswordException", "Password does not conform to policy: Password not long enough")
	}
	salt, verifier, err := srp.NewVerifier(s.opts.UserPoolID, ch.username, password, rand.Reader)
	if err != nil {
		return nil, errf("InternalErrorException", "internal error")
	}
	s.mu.Lock()
	if u := s.users[ch.username]; u != nil {
		u.Password, u.salt, u.verifier = password, salt, verifier
		u.MustChangePassword = false
	}
	s.mu.Unlock()
	return s.signedIn(ch.username)
}

func (s *Server) refreshAuth(token string) (*authOutput, error) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.refresh[token]
	switch {
	case r == nil:
		return nil, errf("NotAuthorizedException", msgRefreshInvalid)
	case r.revoked:
		return nil, errf("NotAuthorizedException", msgRefreshRevoked)
	}
	u := s.users[r.username]
	if u == nil {
		return nil, errf("NotAuthorizedException", msgRefreshInvalid)
	}
	// A refresh keeps auth_time and gives no new refresh token.
	return &authOutput{AuthenticationResult: s.tokensLocked(u, r.originJTI, r.authTime, now)}, nil
}

// tokensLocked issues an id and an access token for u.
// REQUIRES: s.mu held.
func (s *Server) tokensLocked(u *userState, originJTI string, authTime, now time.Time) *authResult {
	exp := now.Add(s.opts.TokenTTL).Unix()
	event := newUUID()
	id := &claims{
		Sub: u.sub, Groups: u.Groups, Email: u.Email, Iss: s.issuer(),
		Username: u.Username, Aud: s.opts.ClientID, OriginJTI: originJTI,
		EventID: event, TokenUse: "id", AuthTime: authTime.Unix(),
		Exp: exp, Iat: now.Unix(), JTI: newUUID(),
	}
	access := &claims{
		Sub: u.sub, Groups: u.Groups, Iss: s.issuer(), ClientID: s.opts.ClientID,
		UserName: u.Username, Scope: "aws.cognito.signin.user.admin",
		OriginJTI: originJTI, EventID: event, TokenUse: "access",
		AuthTime: authTime.Unix(), Exp: exp, Iat: now.Unix(), JTI: newUUID(),
	}
	return &authResult{
		IdToken:     signJWT(s.key, id),
		AccessToken: signJWT(s.key, access),
		ExpiresIn:   int64(math.Ceil(s.opts.TokenTTL.Seconds())),
		TokenType:   "Bearer",
	}
}

type revokeTokenInput struct {
	Token    string
	ClientId string
}

type empty struct{}

func (s *Server) revokeToken(in *revokeTokenInput) (*empty, error) {
	if err := s.checkClient(in.ClientId); err != nil {
		return nil, err
	}
	if in.Token == "" {
		return nil, errf("InvalidParameterException", "Missing required parameter Token")
	}
	if _, err := parseJWT(s.key, in.Token); err == nil {
		return nil, errf("UnsupportedTokenTypeException", "Unsupported token type")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// An unknown token is not an error (RFC 7009 section 2.2).
	if r := s.refresh[in.Token]; r != nil {
		r.revoked = true
		s.revokedJTI[r.originJTI] = true
	}
	return &empty{}, nil
}

type getUserInput struct {
	AccessToken string
}

type attribute struct {
	Name, Value string
}

type getUserOutput struct {
	Username       string
	UserAttributes []attribute
}

func (s *Server) getUser(in *getUserInput) (*getUserOutput, error) {
	c, err := parseJWT(s.key, in.AccessToken)
	if err != nil || c.TokenUse != "access" || c.ClientID != s.opts.ClientID {
		return nil, errf("NotAuthorizedException", "Invalid Access Token")
	}
	if !s.opts.Now().Before(time.Unix(c.Exp, 0)) {
		return nil, errf("NotAuthorizedException", "Access Token has expired")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revokedJTI[c.OriginJTI] {
		return nil, errf("NotAuthorizedException", "Access Token has been revoked")
	}
	u := s.users[c.UserName]
	if u == nil {
		return nil, errf("UserNotFoundException", msgNoUser)
	}
	out := &getUserOutput{Username: u.Username, UserAttributes: []attribute{{"sub", u.sub}}}
	if u.Email != "" {
		out.UserAttributes = append(out.UserAttributes, attribute{"email", u.Email}, attribute{"email_verified", "true"})
	}
	return out, nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
