// Package srp is the arithmetic of the SRP-6a variant that Amazon Cognito user
// pools use for the USER_SRP_AUTH flow: the client side (SRP_A, then the
// PASSWORD_CLAIM_SIGNATURE that answers the PASSWORD_VERIFIER challenge) and
// the server side (salt and verifier, SRP_B, checking the signature), which
// only internal/fakecognito uses. Both sides live here so they share one set
// of constants and one padding rule.
//
// # The variant
//
// Cognito's parameters are those of the AWS client libraries
// (amazon-cognito-identity-js AuthenticationHelper, the Android and iOS SDKs),
// not of RFC 5054's test vectors:
//
//   - N is the 3072-bit MODP group of RFC 3526 (section 4), g = 2, H = SHA-256.
//   - Every number that is hashed is first written as padded hex (padHex):
//     the minimal two's-complement big-endian encoding of the number, which
//     for a non-negative number is its bytes with one 0x00 in front when the
//     top bit is set (Java's BigInteger.toByteArray). Hashes of hex strings
//     hash the decoded bytes.
//   - k = H(padHex(N) || padHex(g)), u = H(padHex(A) || padHex(B)).
//   - x = H(padHex(salt) || H(poolName || userID || ":" || password)), where
//     poolName is the part of the user pool id after "_" and userID is the
//     USER_ID_FOR_SRP challenge parameter, not what the user typed.
//   - S = (B - k*g^x)^(a + u*x) mod N on the client, (A*v^u)^b mod N on the
//     server; the session key is HKDF-SHA256(ikm = padHex(S), salt = padHex(u),
//     info = "Caldera Derived Key"), 16 bytes.
//   - PASSWORD_CLAIM_SIGNATURE = base64(HMAC-SHA256(key, poolName || userID ||
//     SECRET_BLOCK (base64-decoded) || TIMESTAMP)), with TIMESTAMP in
//     TimestampLayout, in UTC, and sent verbatim next to the signature.
//
// There is no M1/M2 exchange: the signature is the proof, and the server's
// answer (tokens or NotAuthorizedException) is the only confirmation.
package srp

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
)

// TimestampLayout is the TIMESTAMP that Cognito expects in the
// PASSWORD_VERIFIER response: Java's "EEE MMM d HH:mm:ss z yyyy" in English
// and UTC, so the day of the month has no leading zero or space
// ("Tue Feb 1 03:04:05 UTC 2000") and the hour runs 00-23.
const TimestampLayout = "Mon Jan 2 15:04:05 UTC 2006"

// FormatTimestamp writes t as a PASSWORD_VERIFIER TIMESTAMP.
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format(TimestampLayout)
}

// nHex is the 3072-bit prime of RFC 3526 section 4 (also RFC 5054 appendix
// A), the group every Cognito client library hard-codes.
const nHex = "" +
	"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
	"29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
	"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
	"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
	"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D" +
	"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
	"83655D23DCA3AD961C62F356208552BB9ED529077096966D" +
	"670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
	"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9" +
	"DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
	"15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64" +
	"ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
	"ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B" +
	"F12FFA06D98A0864D87602733EC86A64521F2B18177B200C" +
	"BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31" +
	"43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"

// infoBits is the HKDF info string. The AWS libraries append the byte 0x01
// themselves because they hand-roll a one-block HKDF-Expand; crypto/hkdf
// appends the block counter on its own.
const infoBits = "Caldera Derived Key"

// keyLen is the derived key length in bytes.
const keyLen = 16

// ephemeralLen is the size in bytes of the random secret exponents a and b,
// as in amazon-cognito-identity-js (128 random bytes).
const ephemeralLen = 128

var (
	bigN = mustHex(nHex)
	bigG = big.NewInt(2)
	bigK = new(big.Int).SetBytes(hashHex(padHex(bigN) + padHex(bigG)))
)

func mustHex(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("srp: bad hex constant")
	}
	return n
}

// padHex writes a non-negative n as Cognito hashes it: lower-case hex of the
// minimal two's-complement encoding, so always an even number of digits, and
// "00" in front when the top bit of the first byte is set (0x80 -> "0080",
// 0 -> "00"). Getting this wrong fails about half of all sign-ins, whenever
// A, B, S, u or the salt happens to start with a high bit.
func padHex(n *big.Int) string {
	if n.Sign() < 0 {
		// Only non-negative values are ever hashed: everything is reduced
		// mod N or is a hash.
		panic("srp: padHex of a negative number")
	}
	h := n.Text(16)
	if len(h)%2 == 1 {
		return "0" + h
	}
	if strings.IndexByte("89abcdef", h[0]) >= 0 {
		return "00" + h
	}
	return h
}

// hashHex is SHA-256 of the bytes that the hex string h encodes.
func hashHex(h string) []byte {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic("srp: hashHex of invalid hex") // only fed by padHex and hex.Encode
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// parseHex reads a hex number sent over the wire (SRP_A, SRP_B, SALT).
func parseHex(name, s string) (*big.Int, error) {
	if s == "" {
		return nil, fmt.Errorf("srp: %s is empty", name)
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() < 0 {
		return nil, fmt.Errorf("srp: %s is not a hex number", name)
	}
	return n, nil
}

// poolName is what Cognito hashes as the pool: the user pool id after "_"
// ("us-east-1_AbCdEf123" -> "AbCdEf123").
func poolName(userPoolID string) (string, error) {
	region, name, ok := strings.Cut(userPoolID, "_")
	if !ok || region == "" || name == "" || strings.Contains(name, "_") {
		return "", fmt.Errorf("srp: user pool id %q is not of the form <region>_<name>", userPoolID)
	}
	return name, nil
}

// calcU is H(padHex(A) || padHex(B)) as a number.
func calcU(a, b *big.Int) *big.Int {
	return new(big.Int).SetBytes(hashHex(padHex(a) + padHex(b)))
}

// calcX is H(padHex(salt) || H(poolName || userID || ":" || password)).
func calcX(pool, userID, password string, salt *big.Int) *big.Int {
	return new(big.Int).SetBytes(hashHex(padHex(salt) + calcXInner(pool, userID, password)))
}

// sessionKey is HKDF-SHA256 of padHex(S) with salt padHex(u).
func sessionKey(s, u *big.Int) []byte {
	ikm, _ := hex.DecodeString(padHex(s))
	salt, _ := hex.DecodeString(padHex(u))
	key, err := hkdf.Key(sha256.New, ikm, salt, infoBits, keyLen)
	if err != nil {
		panic("srp: hkdf: " + err.Error()) // only fails for absurd lengths
	}
	return key
}

// claimSignature is the raw HMAC behind PASSWORD_CLAIM_SIGNATURE.
func claimSignature(key []byte, pool, userID string, secretBlock []byte, timestamp string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(pool))
	m.Write([]byte(userID))
	m.Write(secretBlock)
	m.Write([]byte(timestamp))
	return m.Sum(nil)
}

// randomExponent draws a secret exponent in [1, N) from random.
func randomExponent(random io.Reader) (*big.Int, error) {
	buf := make([]byte, ephemeralLen)
	for range 8 {
		if _, err := io.ReadFull(random, buf); err != nil {
			return nil, fmt.Errorf("srp: reading random bytes: %w", err)
		}
		n := new(big.Int).SetBytes(buf)
		n.Mod(n, bigN)
		if n.Sign() != 0 {
			return n, nil
		}
	}
	return nil, errors.New("srp: random source keeps returning zero")
}

// isZeroModN reports whether n ≡ 0 (mod N), the SRP-6a safety check on A
// and B: a peer that sends a multiple of N forces S to a known value.
func isZeroModN(n *big.Int) bool {
	return new(big.Int).Mod(n, bigN).Sign() == 0
}

// calcXInner is H(poolName || userID || ":" || password) in hex, exposed to
// the tests because published vectors quote it.
func calcXInner(pool, userID, password string) string {
	inner := sha256.Sum256([]byte(pool + userID + ":" + password))
	return hex.EncodeToString(inner[:])
}
