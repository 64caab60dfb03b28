package srp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// Client is one sign-in attempt: the secret a and the public A sent as
// SRP_A. Use a new Client for every InitiateAuth; it is not safe for
// concurrent use.
type Client struct {
	pool string   // user pool name (after the "_")
	a    *big.Int // secret ephemeral
	bigA *big.Int // g^a mod N
}

// NewClient draws a fresh secret from random (crypto/rand.Reader in
// production) for the user pool userPoolID ("us-east-1_AbCdEf123").
func NewClient(userPoolID string, random io.Reader) (*Client, error) {
	pool, err := poolName(userPoolID)
	if err != nil {
		return nil, err
	}
	for range 8 {
		a, err := randomExponent(random)
		if err != nil {
			return nil, err
		}
		if c, ok := newClientWithA(pool, a); ok {
			return c, nil
		}
	}
	return nil, errors.New("srp: could not draw a usable secret")
}

// newClientWithA is NewClient with a fixed secret, for test vectors. It
// fails only when A ≡ 0 (mod N).
func newClientWithA(pool string, a *big.Int) (*Client, bool) {
	bigA := new(big.Int).Exp(bigG, a, bigN)
	if isZeroModN(bigA) {
		return nil, false
	}
	return &Client{pool: pool, a: a, bigA: bigA}, true
}

// SRPA is A in hex, for AuthParameters["SRP_A"] of InitiateAuth. Like the
// AWS libraries it is unpadded lower-case hex; the service reads it as a
// number.
func (c *Client) SRPA() string {
	return c.bigA.Text(16)
}

// PasswordClaim answers a PASSWORD_VERIFIER challenge. userIDForSRP, srpBHex,
// saltHex and secretBlockB64 are the challenge parameters USER_ID_FOR_SRP,
// SRP_B, SALT and SECRET_BLOCK, unchanged; now is the time to stamp, the
// wall clock in production (it is written in UTC). It returns the
// PASSWORD_CLAIM_SIGNATURE and the TIMESTAMP to send with it: the service
// recomputes the signature over exactly that string.
//
// It fails on a malformed challenge and on the SRP-6a safety checks
// (B ≡ 0 mod N, u = 0), which a genuine server never triggers.
func (c *Client) PasswordClaim(userIDForSRP, password, srpBHex, saltHex, secretBlockB64 string, now time.Time) (signatureB64, timestamp string, err error) {
	if userIDForSRP == "" {
		return "", "", errors.New("srp: USER_ID_FOR_SRP is empty")
	}
	bigB, err := parseHex("SRP_B", srpBHex)
	if err != nil {
		return "", "", err
	}
	if isZeroModN(bigB) {
		return "", "", errors.New("srp: SRP_B is 0 mod N")
	}
	salt, err := parseHex("SALT", saltHex)
	if err != nil {
		return "", "", err
	}
	secretBlock, err := base64.StdEncoding.DecodeString(secretBlockB64)
	if err != nil {
		return "", "", fmt.Errorf("srp: SECRET_BLOCK is not base64: %w", err)
	}
	key, err := c.passwordKey(userIDForSRP, password, bigB, salt)
	if err != nil {
		return "", "", err
	}
	timestamp = FormatTimestamp(now)
	sig := claimSignature(key, c.pool, userIDForSRP, secretBlock, timestamp)
	return base64.StdEncoding.EncodeToString(sig), timestamp, nil
}

// passwordKey is the 16-byte session key, the client's side of
// getPasswordAuthenticationKey.
func (c *Client) passwordKey(userID, password string, bigB, salt *big.Int) ([]byte, error) {
	u := calcU(c.bigA, bigB)
	if u.Sign() == 0 {
		return nil, errors.New("srp: u is zero")
	}
	x := calcX(c.pool, userID, password, salt)
	// base = (B - k*g^x) mod N, taken non-negative before the power.
	base := new(big.Int).Exp(bigG, x, bigN)
	base.Mul(base, bigK)
	base.Sub(bigB, base)
	base.Mod(base, bigN)
	exp := new(big.Int).Mul(u, x)
	exp.Add(exp, c.a)
	s := new(big.Int).Exp(base, exp, bigN)
	return sessionKey(s, u), nil
}

// SecretHash is the SECRET_HASH parameter that app clients with a client
// secret require on InitiateAuth and RespondToAuthChallenge:
// base64(HMAC-SHA256(clientSecret, username || clientID)). Amplify's app
// clients have no secret, so ampfs normally sends none.
func SecretHash(username, clientID, clientSecret string) string {
	m := hmac.New(sha256.New, []byte(clientSecret))
	m.Write([]byte(username + clientID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
