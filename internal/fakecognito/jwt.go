package fakecognito

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// claims of the id and access tokens, with the service's claim names.
type claims struct {
	Sub       string   `json:"sub"`
	Groups    []string `json:"cognito:groups,omitempty"`
	Email     string   `json:"email,omitempty"`
	Iss       string   `json:"iss"`
	Username  string   `json:"cognito:username,omitempty"` // id token
	Aud       string   `json:"aud,omitempty"`              // id token: the client id
	ClientID  string   `json:"client_id,omitempty"`        // access token
	UserName  string   `json:"username,omitempty"`         // access token
	Scope     string   `json:"scope,omitempty"`            // access token
	OriginJTI string   `json:"origin_jti"`                 // the sign-in the token descends from
	EventID   string   `json:"event_id"`
	TokenUse  string   `json:"token_use"` // "id" or "access"
	AuthTime  int64    `json:"auth_time"`
	Exp       int64    `json:"exp"`
	Iat       int64    `json:"iat"`
	JTI       string   `json:"jti"`
}

var jwtHeader = b64url([]byte(`{"kid":"fakecognito","alg":"HS256","typ":"JWT"}`))

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signJWT writes c as a JWT signed with key.
func signJWT(key []byte, c *claims) string {
	payload, err := json.Marshal(c)
	if err != nil {
		panic(err) // plain struct, cannot fail
	}
	signed := jwtHeader + "." + b64url(payload)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	return signed + "." + b64url(m.Sum(nil))
}

var errBadJWT = errors.New("not a token of this server")

// parseJWT checks that tok is a JWT signed with key and returns its claims.
// Expiry is the caller's to check.
func parseJWT(key []byte, tok string) (*claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return nil, errBadJWT
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errBadJWT
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return nil, errBadJWT
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errBadJWT
	}
	c := new(claims)
	if err := json.Unmarshal(payload, c); err != nil {
		return nil, errBadJWT
	}
	return c, nil
}
