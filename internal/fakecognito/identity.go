package fakecognito

import (
	"time"
)

type getIDInput struct {
	AccountId      string
	IdentityPoolId string
	Logins         map[string]string
}

type getIDOutput struct {
	IdentityId string
}

type getCredentialsInput struct {
	IdentityId    string
	Logins        map[string]string
	CustomRoleArn string
}

type credentials struct {
	AccessKeyId  string
	SecretKey    string
	SessionToken string
	Expiration   float64 // epoch seconds, as the JSON 1.1 protocol writes timestamps
}

type getCredentialsOutput struct {
	IdentityId  string
	Credentials credentials
}

const msgNoGuests = "Unauthenticated access is not supported for this identity pool."

func (s *Server) getID(in *getIDInput) (*getIDOutput, error) {
	if in.IdentityPoolId != s.opts.IdentityPoolID {
		return nil, errf("ResourceNotFoundException", "IdentityPool '%s' not found.", in.IdentityPoolId)
	}
	if len(in.Logins) == 0 {
		g, err := s.guestIdentity()
		if err != nil {
			return nil, err
		}
		return &getIDOutput{IdentityId: g.id}, nil
	}
	u, err := s.checkLogins(in.Logins)
	if err != nil {
		return nil, err
	}
	return &getIDOutput{IdentityId: u.IdentityID}, nil
}

func (s *Server) guestIdentity() (identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opts.AllowGuest || s.guest == nil {
		return identity{}, errf("NotAuthorizedException", msgNoGuests)
	}
	return *s.guest, nil
}

// checkLogins validates the Logins map of an identity call: one id token of
// this user pool, issued by this server for its client, not expired. It
// returns a copy of the token's user.
func (s *Server) checkLogins(logins map[string]string) (userState, error) {
	if len(logins) != 1 {
		return userState{}, errf("NotAuthorizedException", "Invalid login token. Only one login from the user pool is supported.")
	}
	tok, ok := logins[s.ProviderName()]
	if !ok {
		return userState{}, errf("NotAuthorizedException", "Token is not from a supported provider of this identity pool.")
	}
	c, err := parseJWT(s.key, tok)
	if err != nil || c.TokenUse != "id" || c.Iss != s.issuer() {
		return userState{}, errf("NotAuthorizedException", "Invalid login token. Not a valid OpenId Connect identity token.")
	}
	if c.Aud != s.opts.ClientID {
		return userState{}, errf("NotAuthorizedException", "Invalid login token. Incorrect token audience.")
	}
	now := s.opts.Now()
	if !now.Before(time.Unix(c.Exp, 0)) {
		return userState{}, errf("NotAuthorizedException", "Invalid login token. Token expired: %d >= %d", now.Unix(), c.Exp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[c.Username]
	if u == nil || u.sub != c.Sub {
		return userState{}, errf("NotAuthorizedException", "Invalid login token. Not a valid OpenId Connect identity token.")
	}
	return *u, nil
}

func (s *Server) getCredentialsForIdentity(in *getCredentialsInput) (*getCredentialsOutput, error) {
	if in.IdentityId == "" {
		return nil, errf("InvalidParameterException", "Missing required parameter IdentityId")
	}
	var id identity
	if len(in.Logins) == 0 {
		s.mu.Lock()
		g := s.guest
		owned := s.identityOwnedLocked(in.IdentityId)
		s.mu.Unlock()
		switch {
		case g != nil && g.id == in.IdentityId:
			var err error
			if id, err = s.guestIdentity(); err != nil {
				return nil, err
			}
		case owned:
			// An authenticated identity without its login.
			return nil, errf("NotAuthorizedException", "Access to Identity '%s' is forbidden.", in.IdentityId)
		default:
			return nil, errf("ResourceNotFoundException", "Identity '%s' not found.", in.IdentityId)
		}
	} else {
		u, err := s.checkLogins(in.Logins)
		if err != nil {
			return nil, err
		}
		if u.IdentityID != in.IdentityId {
			return nil, errf("NotAuthorizedException", "Access to Identity '%s' is forbidden.", in.IdentityId)
		}
		id = identity{id: u.IdentityID, accessKey: u.AccessKey, secretKey: u.SecretKey}
	}
	exp := s.opts.Now().Add(s.opts.CredentialsTTL)
	return &getCredentialsOutput{
		IdentityId: id.id,
		Credentials: credentials{
			AccessKeyId: id.accessKey,
			SecretKey:   id.secretKey,
			// Empty on purpose: these are the S3 server's (versitygw's)
			// long-term account keys, and versitygw rejects any request that
			// carries a session token. The service always sends one.
			SessionToken: "",
			Expiration:   float64(exp.UnixMilli()) / 1000,
		},
	}, nil
}

// identityOwnedLocked reports whether id is some user's identity.
// REQUIRES: s.mu held.
func (s *Server) identityOwnedLocked(id string) bool {
	for _, u := range s.users {
		if u.IdentityID == id {
			return true
		}
	}
	return false
}
