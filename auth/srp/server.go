package srp

import (
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// saltLen is the salt size in bytes; Cognito's SALT values are 16 bytes.
const saltLen = 16

// NewVerifier makes what the service stores for a password: a random salt
// and v = g^x mod N, both in hex. The salt is written like Cognito's SALT
// (unpadded), so a client that forgets padHex on it fails here as it would
// against the service.
func NewVerifier(userPoolID, username, password string, random io.Reader) (saltHex, verifierHex string, err error) {
	pool, err := poolName(userPoolID)
	if err != nil {
		return "", "", err
	}
	if username == "" {
		return "", "", errors.New("srp: empty username")
	}
	buf := make([]byte, saltLen)
	if _, err := io.ReadFull(random, buf); err != nil {
		return "", "", fmt.Errorf("srp: reading random bytes: %w", err)
	}
	salt := new(big.Int).SetBytes(buf)
	x := calcX(pool, username, password, salt)
	v := new(big.Int).Exp(bigG, x, bigN)
	return salt.Text(16), v.Text(16), nil
}

// ServerSession is the service's side of one PASSWORD_VERIFIER challenge. It
// is immutable after NewServerSession and safe for concurrent use.
type ServerSession struct {
	pool     string
	username string // USER_ID_FOR_SRP
	bigB     *big.Int
	key      []byte // the session key the client must have derived
}

// NewServerSession starts a challenge for username (the USER_ID_FOR_SRP the
// client will hash) with the stored salt and verifier and the client's
// SRP_A. It fails if SRP_A is not a number or is 0 mod N.
func NewServerSession(userPoolID, username, saltHex, verifierHex, srpAHex string, random io.Reader) (*ServerSession, error) {
	pool, err := poolName(userPoolID)
	if err != nil {
		return nil, err
	}
	if _, err := parseHex("salt", saltHex); err != nil {
		return nil, err
	}
	v, err := parseHex("verifier", verifierHex)
	if err != nil {
		return nil, err
	}
	bigA, err := parseHex("SRP_A", srpAHex)
	if err != nil {
		return nil, err
	}
	if isZeroModN(bigA) {
		return nil, errors.New("srp: SRP_A is 0 mod N")
	}
	for range 8 {
		b, err := randomExponent(random)
		if err != nil {
			return nil, err
		}
		// B = (k*v + g^b) mod N
		bigB := new(big.Int).Exp(bigG, b, bigN)
		kv := new(big.Int).Mul(bigK, v)
		bigB.Add(bigB, kv)
		bigB.Mod(bigB, bigN)
		if bigB.Sign() == 0 {
			continue
		}
		u := calcU(bigA, bigB)
		if u.Sign() == 0 {
			continue
		}
		// S = (A * v^u)^b mod N
		s := new(big.Int).Exp(v, u, bigN)
		s.Mul(s, bigA)
		s.Mod(s, bigN)
		s.Exp(s, b, bigN)
		return &ServerSession{pool: pool, username: username, bigB: bigB, key: sessionKey(s, u)}, nil
	}
	return nil, errors.New("srp: could not draw a usable server secret")
}

// SRPB is B in hex, for the SRP_B challenge parameter.
func (s *ServerSession) SRPB() string {
	return s.bigB.Text(16)
}

// Verify checks a PASSWORD_CLAIM_SIGNATURE against the SECRET_BLOCK and
// TIMESTAMP the client sent with it. It checks only the proof; whether the
// timestamp is fresh and the secret block is the one this session issued is
// the caller's business.
func (s *ServerSession) Verify(secretBlockB64, timestamp, signatureB64 string) bool {
	secretBlock, err := base64.StdEncoding.DecodeString(secretBlockB64)
	if err != nil {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(signatureB64)
	if err != nil {
		return false
	}
	want := claimSignature(s.key, s.pool, s.username, secretBlock, timestamp)
	return hmac.Equal(got, want)
}
