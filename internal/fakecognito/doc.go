// Package fakecognito is a loopback stand-in for the two Cognito services an
// Amplify app signs in with, for tests only: the user pool
// (AWSCognitoIdentityProviderService: InitiateAuth, RespondToAuthChallenge,
// RevokeToken, GetUser) and the identity pool (AWSCognitoIdentityService:
// GetId, GetCredentialsForIdentity). Both answer on one URL in the services'
// own JSON 1.1 protocol, dispatched on X-Amz-Target, so the real
// aws-sdk-go-v2 clients talk to it through an endpoint override
// (BaseEndpoint, or AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER and
// AWS_ENDPOINT_URL_COGNITO_IDENTITY) with anonymous credentials: these
// operations are unsigned in the real service too.
//
// # What it checks
//
// USER_SRP_AUTH is verified with the server side of auth/srp, the same
// arithmetic as the service, so a client that gets any detail of Cognito's
// SRP wrong (padding, USER_ID_FOR_SRP, the timestamp) fails here as it would
// against AWS. Errors are the service's: HTTP 400, the exception name in
// X-Amzn-ErrorType and in the body's __type, and the service's messages
// ("Incorrect username or password.", "Refresh Token has been revoked", ...),
// so the SDK returns its typed errors (*types.NotAuthorizedException).
//
// Id and access tokens are JWTs signed with HS256 and a random per-server key
// (the service uses RS256 and publishes its keys; clients do not verify
// them). The identity pool accepts only id tokens this server issued, for
// its client id, unexpired by Options.Now.
//
// # Credentials
//
// Each identity maps to one account of the S3 server under test (versitygw):
// GetCredentialsForIdentity returns that account's access key and secret and
// an expiry of Options.CredentialsTTL, but no session token, because
// versitygw rejects requests that carry one. Real Cognito credentials always
// have a session token; the client must pass whatever it gets.
//
// # Differences from the service
//
//   - No device tracking, MFA, custom auth, client secrets or user
//     attributes beyond email.
//   - Refresh tokens are opaque random strings (the service's are encrypted
//     JWTs) and never expire.
//   - The PASSWORD_VERIFIER TIMESTAMP must parse but its distance from the
//     clock is not checked.
//
// Nothing is logged: requests carry passwords, tokens and secrets.
//
// # Locking
//
// One mutex, Server.mu, guards all state. It is never held during the SRP
// arithmetic or while writing a response.
package fakecognito
