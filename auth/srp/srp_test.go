package srp

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestPadHex(t *testing.T) {
	// Spot values of the table in amplify-js's AuthenticationHelper.test.js,
	// which was generated from Java's BigInteger.toByteArray.
	tests := []struct {
		n    int64
		want string
	}{
		{0, "00"}, {1, "01"}, {15, "0f"}, {16, "10"}, {127, "7f"},
		{128, "0080"}, {129, "0081"}, {200, "00c8"}, {255, "00ff"},
		{256, "0100"}, {0x7fff, "7fff"}, {0x8000, "008000"},
		{0xabc, "0abc"}, {0x1234567, "01234567"}, {0x8123abcd, "008123abcd"},
	}
	for _, tt := range tests {
		if got := padHex(big.NewInt(tt.n)); got != tt.want {
			t.Errorf("padHex(%#x) = %q, want %q", tt.n, got, tt.want)
		}
	}
	for i := range int64(257) {
		if got, want := padHex(big.NewInt(i)), javaHex(big.NewInt(i)); got != want {
			t.Errorf("padHex(%d) = %q, Java gives %q", i, got, want)
		}
	}
}

// javaHex is Java's BigInteger.toByteArray in hex for n >= 0, written
// independently of padHex: the big-endian bytes, plus a zero byte when the
// top bit is set, and one zero byte for zero.
func javaHex(n *big.Int) string {
	b := n.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return hex.EncodeToString(b)
}

func FuzzPadHex(f *testing.F) {
	for _, seed := range [][]byte{{}, {0}, {0x7f}, {0x80}, {0, 0x80}, {1, 0}, {0xff, 0xff}, {0, 0, 1}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		n := new(big.Int).SetBytes(raw)
		got := padHex(n)
		if got != javaHex(n) {
			t.Fatalf("padHex(%x) = %q, want %q", raw, got, javaHex(n))
		}
		b, err := hex.DecodeString(got)
		if err != nil {
			t.Fatalf("padHex(%x) = %q: %v", raw, got, err)
		}
		if b[0]&0x80 != 0 {
			t.Fatalf("padHex(%x) = %q reads as negative", raw, got)
		}
		if len(b) > 1 && b[0] == 0 && b[1]&0x80 == 0 {
			t.Fatalf("padHex(%x) = %q has a redundant zero byte", raw, got)
		}
		if new(big.Int).SetBytes(b).Cmp(n) != 0 {
			t.Fatalf("padHex(%x) = %q changes the value", raw, got)
		}
	})
}

func TestFormatTimestamp(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC), "Mon Jan 2 15:04:05 UTC 2006"},
		{time.Date(2024, 3, 9, 0, 0, 0, 0, time.UTC), "Sat Mar 9 00:00:00 UTC 2024"},
		{time.Date(2024, 12, 31, 23, 59, 59, 999, time.UTC), "Tue Dec 31 23:59:59 UTC 2024"},
		{time.Date(2024, 7, 1, 1, 2, 3, 0, time.FixedZone("UTC+10", 10*3600)), "Sun Jun 30 15:02:03 UTC 2024"},
	}
	for _, tt := range tests {
		if got := FormatTimestamp(tt.in); got != tt.want {
			t.Errorf("FormatTimestamp(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPoolName(t *testing.T) {
	tests := []struct {
		id, want string
		ok       bool
	}{
		{"us-east-1_AbCdEf123", "AbCdEf123", true},
		{"eu-west-2_bBpjKlyj6", "bBpjKlyj6", true},
		{"AbCdEf123", "", false},
		{"us-east-1_", "", false},
		{"_abc", "", false},
		{"a_b_c", "", false},
	}
	for _, tt := range tests {
		got, err := poolName(tt.id)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("poolName(%q) = %q, %v; want %q, ok %v", tt.id, got, err, tt.want, tt.ok)
		}
	}
}

const testPoolID = "us-east-1_TestPool1"

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name              string
		userID            string // what the verifier was made for and the client hashes
		password, attempt string
		ok                bool
	}{
		{"right password", "alice", "correct horse battery staple", "correct horse battery staple", true},
		{"uuid user id", "8f2c1e4a-1b2c-4d5e-9f00-112233445566", "Pässwörd!1", "Pässwörd!1", true},
		{"empty password", "bob", "", "", true},
		{"wrong password", "alice", "correct horse battery staple", "correct horse battery stapler", false},
		{"case matters", "alice", "Secret1", "secret1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Several rounds, so salts, A and B with and without the top bit
			// set all occur.
			for i := range 8 {
				salt, verifier, err := NewVerifier(testPoolID, tt.userID, tt.password, rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				c, err := NewClient(testPoolID, rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				s, err := NewServerSession(testPoolID, tt.userID, salt, verifier, c.SRPA(), rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				block := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("secret block %d", i)))
				sig, ts, err := c.PasswordClaim(tt.userID, tt.attempt, s.SRPB(), salt, block, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if got := s.Verify(block, ts, sig); got != tt.ok {
					t.Fatalf("round %d: Verify = %v, want %v", i, got, tt.ok)
				}
				if tt.ok {
					// The signature covers the block, the timestamp and the user.
					other := base64.StdEncoding.EncodeToString([]byte("another block"))
					if s.Verify(other, ts, sig) {
						t.Fatal("Verify accepted a different secret block")
					}
					if s.Verify(block, FormatTimestamp(time.Now().Add(time.Hour)), sig) {
						t.Fatal("Verify accepted a different timestamp")
					}
					sig2, ts2, err := c.PasswordClaim(tt.userID+"x", tt.attempt, s.SRPB(), salt, block, time.Now())
					if err != nil {
						t.Fatal(err)
					}
					if s.Verify(block, ts2, sig2) {
						t.Fatal("Verify accepted a claim for another user id")
					}
				}
			}
		})
	}
}

func TestSaltPadding(t *testing.T) {
	// A salt sent with redundant leading zeros is the same number: client and
	// server both read it as one, so the proof still holds.
	salt, verifier, err := NewVerifier(testPoolID, "carol", "pw", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(testPoolID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServerSession(testPoolID, "carol", salt, verifier, c.SRPA(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block := base64.StdEncoding.EncodeToString([]byte("b"))
	sig, ts, err := c.PasswordClaim("carol", "pw", "000"+s.SRPB(), "0000"+strings.ToUpper(salt), block, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Verify(block, ts, sig) {
		t.Fatal("Verify failed for zero-prefixed upper-case SALT and SRP_B")
	}
}

func TestPasswordClaimErrors(t *testing.T) {
	c, err := NewClient(testPoolID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block := base64.StdEncoding.EncodeToString([]byte("block"))
	nHex := bigN.Text(16)
	twoN := new(big.Int).Lsh(bigN, 1).Text(16)
	tests := []struct {
		name, userID, b, salt, block, wantErr string
	}{
		{"B is zero", "u", "0", "ab", block, "0 mod N"},
		{"B is N", "u", nHex, "ab", block, "0 mod N"},
		{"B is 2N", "u", twoN, "ab", block, "0 mod N"},
		{"B empty", "u", "", "ab", block, "SRP_B is empty"},
		{"B not hex", "u", "xyz", "ab", block, "SRP_B is not a hex number"},
		{"B negative", "u", "-5", "ab", block, "SRP_B is not a hex number"},
		{"salt not hex", "u", "5", "zz", block, "SALT is not a hex number"},
		{"block not base64", "u", "5", "ab", "%%%", "SECRET_BLOCK is not base64"},
		{"no user id", "", "5", "ab", block, "USER_ID_FOR_SRP is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := c.PasswordClaim(tt.userID, "pw", tt.b, tt.salt, tt.block, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestServerErrors(t *testing.T) {
	salt, verifier, err := NewVerifier(testPoolID, "dave", "pw", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"0", bigN.Text(16), "", "not hex"} {
		if _, err := NewServerSession(testPoolID, "dave", salt, verifier, a, rand.Reader); err == nil {
			t.Errorf("NewServerSession accepted SRP_A %q", a)
		}
	}
	if _, err := NewServerSession("nopool", "dave", salt, verifier, "5", rand.Reader); err == nil {
		t.Error("NewServerSession accepted a pool id without _")
	}
	if _, _, err := NewVerifier("nopool", "dave", "pw", rand.Reader); err == nil {
		t.Error("NewVerifier accepted a pool id without _")
	}
	if _, err := NewClient("nopool", rand.Reader); err == nil {
		t.Error("NewClient accepted a pool id without _")
	}
	s, err := NewServerSession(testPoolID, "dave", salt, verifier, "5", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range [][3]string{{"%%", "ts", "AAAA"}, {"AAAA", "ts", "%%"}, {"AAAA", "ts", ""}} {
		if s.Verify(tt[0], tt[1], tt[2]) {
			t.Errorf("Verify(%q, %q, %q) = true", tt[0], tt[1], tt[2])
		}
	}
}

func TestRandomSource(t *testing.T) {
	// A short random source is an error, not a panic or a weak secret.
	if _, err := NewClient(testPoolID, bytes.NewReader(make([]byte, 10))); err == nil {
		t.Error("NewClient accepted a short random source")
	}
	// An all-zero source gives a = 0 every time: refused.
	if _, err := NewClient(testPoolID, zeroReader{}); err == nil {
		t.Error("NewClient accepted an all-zero random source")
	}
	if _, _, err := NewVerifier(testPoolID, "u", "p", bytes.NewReader(nil)); err == nil {
		t.Error("NewVerifier accepted an empty random source")
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
