package fakecognito

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampfs/ampfs/auth/srp"
)

// X-Amz-Target prefixes of the two services.
const (
	idpPrefix      = "AWSCognitoIdentityProviderService."
	identityPrefix = "AWSCognitoIdentityService."
)

// Options configure a fake; every zero value has a default.
type Options struct {
	// Region is the region in token issuers and ids; default "us-east-1".
	Region string
	// UserPoolID is the user pool id; default Region+"_fakePool01".
	UserPoolID string
	// ClientID is the only app client id accepted; default
	// "fakeclient0123456789abcdef".
	ClientID string
	// IdentityPoolID is the only identity pool id accepted; default
	// Region+":00000000-0000-4000-8000-000000000000".
	IdentityPoolID string
	// TokenTTL is the lifetime of id and access tokens; default 1h. JWT
	// expiry is in whole seconds, so use at least a second.
	TokenTTL time.Duration
	// CredentialsTTL is the lifetime of the credentials from
	// GetCredentialsForIdentity; default 1h.
	CredentialsTTL time.Duration
	// AllowPasswordAuth enables USER_PASSWORD_AUTH on the app client; off, as
	// on Amplify's app clients, it is refused like the service refuses it.
	AllowPasswordAuth bool
	// AllowGuest enables unauthenticated identities (GetId without Logins);
	// they also need SetGuest.
	AllowGuest bool
	// PreventUserExistenceErrors answers an unknown user like a wrong
	// password (NotAuthorizedException), as app clients created by the
	// console or Amplify do; off, it is UserNotFoundException.
	PreventUserExistenceErrors bool
	// Now is the clock for token and credential expiry; default time.Now.
	Now func() time.Time
}

// User is a user pool user and the identity and S3 account behind it.
type User struct {
	// Username is the pool's username, sent back as USERNAME and
	// USER_ID_FOR_SRP. With Amplify's loginWith email it is a UUID and
	// people sign in with Email.
	Username string
	// Email, if set, is an alias the user may sign in with.
	Email    string
	Password string
	// IdentityID is the user's identity pool identity; default
	// Region+":"+a random UUID.
	IdentityID string
	// AccessKey and SecretKey are the S3 account the identity's credentials
	// are.
	AccessKey, SecretKey string
	// Groups become the cognito:groups claim.
	Groups []string
	// MustChangePassword answers a correct password with
	// NEW_PASSWORD_REQUIRED, as for a user an administrator created.
	MustChangePassword bool
	// Unconfirmed answers a correct password with UserNotConfirmedException.
	Unconfirmed bool
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the endpoint of both services, "http://127.0.0.1:PORT".
	URL string

	tb      testing.TB
	opts    Options
	httpSrv *httptest.Server
	key     []byte // HS256 key of every JWT this server issues

	mu sync.Mutex
	// GUARDED_BY(mu)
	users      map[string]*userState // by Username
	aliases    map[string]string     // Email -> Username
	guest      *identity
	srpByBlock map[string]*srpChallenge   // by SECRET_BLOCK
	newPwBySes map[string]*newPwChallenge // by Session
	refresh    map[string]*refreshState   // by refresh token
	revokedJTI map[string]bool            // origin_jti of revoked sign-ins
	requests   []string                   // X-Amz-Target of every request
}

type userState struct {
	User
	sub            string
	salt, verifier string // hex, from srp.NewVerifier
}

type identity struct {
	id                   string
	accessKey, secretKey string
}

// challengeTTL is how long a challenge (SECRET_BLOCK or Session) stays
// valid; the service's default AuthSessionValidity is 3 minutes.
const challengeTTL = 3 * time.Minute

type srpChallenge struct {
	username string // "" for the decoy of an unknown user
	session  *srp.ServerSession
	expires  time.Time
}

type newPwChallenge struct {
	username string
	expires  time.Time
}

type refreshState struct {
	username  string
	originJTI string    // jti of the sign-in, origin_jti of every token from it
	authTime  time.Time // of the sign-in
	revoked   bool
}

// Start runs a fake on a free loopback port until the end of the test.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.UserPoolID == "" {
		opts.UserPoolID = opts.Region + "_fakePool01"
	}
	if opts.ClientID == "" {
		opts.ClientID = "fakeclient0123456789abcdef"
	}
	if opts.IdentityPoolID == "" {
		opts.IdentityPoolID = opts.Region + ":00000000-0000-4000-8000-000000000000"
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.CredentialsTTL <= 0 {
		opts.CredentialsTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		tb:         tb,
		opts:       opts,
		key:        randomBytes(32),
		users:      map[string]*userState{},
		aliases:    map[string]string{},
		srpByBlock: map[string]*srpChallenge{},
		newPwBySes: map[string]*newPwChallenge{},
		refresh:    map[string]*refreshState{},
		revokedJTI: map[string]bool{},
	}
	s.httpSrv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.httpSrv.URL
	tb.Cleanup(s.httpSrv.Close)
	return s
}

// Options returns the options in effect, defaults filled in.
func (s *Server) Options() Options { return s.opts }

// ProviderName is the Logins key for this user pool's id tokens:
// "cognito-idp.<region>.amazonaws.com/<UserPoolID>".
func (s *Server) ProviderName() string {
	return "cognito-idp." + s.opts.Region + ".amazonaws.com/" + s.opts.UserPoolID
}

// issuer is the iss claim of this pool's tokens.
func (s *Server) issuer() string { return "https://" + s.ProviderName() }

// AddUser adds u, or replaces the user with the same Username.
func (s *Server) AddUser(u User) {
	s.tb.Helper()
	if u.Username == "" {
		s.tb.Fatal("fakecognito: AddUser without a Username")
	}
	if u.IdentityID == "" {
		u.IdentityID = s.opts.Region + ":" + newUUID()
	}
	u.Groups = slices.Clone(u.Groups)
	st := &userState{User: u, sub: newUUID()}
	if err := st.setPassword(s.opts.UserPoolID, u.Password); err != nil {
		s.tb.Fatalf("fakecognito: AddUser %q: %v", u.Username, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.users[u.Username]; old != nil && old.Email != "" {
		delete(s.aliases, old.Email)
	}
	s.users[u.Username] = st
	if u.Email != "" {
		s.aliases[u.Email] = u.Username
	}
}

func (u *userState) setPassword(poolID, password string) error {
	salt, verifier, err := srp.NewVerifier(poolID, u.Username, password, rand.Reader)
	if err != nil {
		return err
	}
	u.Password, u.salt, u.verifier = password, salt, verifier
	return nil
}

// SetGuest sets the unauthenticated identity and its S3 account; it is used
// only with Options.AllowGuest.
func (s *Server) SetGuest(identityID, accessKey, secretKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.guest = &identity{id: identityID, accessKey: accessKey, secretKey: secretKey}
}

// RevokeRefreshTokens revokes every refresh token of username and the access
// tokens issued with them, like AdminUserGlobalSignOut.
func (s *Server) RevokeRefreshTokens(username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.refresh {
		if r.username == username {
			r.revoked = true
			s.revokedJTI[r.originJTI] = true
		}
	}
}

// Calls counts the requests for target, either the full X-Amz-Target
// ("AWSCognitoIdentityService.GetId") or only the operation ("GetId").
func (s *Server) Calls(target string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r == target || (!strings.Contains(target, ".") && strings.HasSuffix(r, "."+target)) {
			n++
		}
	}
	return n
}

// Requests is the X-Amz-Target of every request so far, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// apiError is an error the way the service sends it.
type apiError struct {
	code    string // exception name, e.g. "NotAuthorizedException"
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errf(code, format string, args ...any) *apiError {
	return &apiError{code: code, message: fmt.Sprintf(format, args...)}
}

// maxBody bounds a request body; the real services allow far less than this.
const maxBody = 1 << 20

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	s.mu.Lock()
	s.requests = append(s.requests, target)
	s.mu.Unlock()

	if r.Method != http.MethodPost {
		writeError(w, errf("UnknownOperationException", "unsupported method %s", r.Method))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeError(w, errf("SerializationException", "cannot read request body"))
		return
	}
	var out any
	switch target {
	case idpPrefix + "InitiateAuth":
		out, err = call(body, s.initiateAuth)
	case idpPrefix + "RespondToAuthChallenge":
		out, err = call(body, s.respondToAuthChallenge)
	case idpPrefix + "RevokeToken":
		out, err = call(body, s.revokeToken)
	case idpPrefix + "GetUser":
		out, err = call(body, s.getUser)
	case identityPrefix + "GetId":
		out, err = call(body, s.getID)
	case identityPrefix + "GetCredentialsForIdentity":
		out, err = call(body, s.getCredentialsForIdentity)
	default:
		err = errf("UnknownOperationException", "unknown operation %q", target)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		writeError(w, errf("InternalErrorException", "cannot encode response"))
		return
	}
	writeHeader(w, http.StatusOK)
	w.Write(b)
}

// call decodes the JSON input of one operation and runs it.
func call[In, Out any](body []byte, op func(*In) (*Out, error)) (any, error) {
	in := new(In)
	if len(body) > 0 {
		if err := json.Unmarshal(body, in); err != nil {
			return nil, errf("SerializationException", "cannot parse request body")
		}
	}
	return op(in)
}

func writeHeader(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-RequestId", newUUID())
	w.WriteHeader(status)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = errf("InternalErrorException", "internal error")
	}
	status := http.StatusBadRequest
	if ae.code == "InternalErrorException" {
		status = http.StatusInternalServerError
	}
	w.Header().Set("X-Amzn-ErrorType", ae.code)
	writeHeader(w, status)
	b, _ := json.Marshal(map[string]string{"__type": ae.code, "message": ae.message})
	w.Write(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return b
}

func newUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
