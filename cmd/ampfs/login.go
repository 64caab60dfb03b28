package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/ampfs/ampfs/auth"
	"github.com/ampfs/ampfs/internal/amplifyconfig"
)

// cognitoTimeout bounds a sign-in's round trips.
const cognitoTimeout = 30 * time.Second

// cognitoFlags select the app's Cognito pools: from --config, or one by one.
func cognitoFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "the app's amplify_outputs.json (Gen2) or amplifyconfiguration.json (Gen1)"},
		&cli.StringFlag{Name: "user-pool-id", Usage: "Cognito user pool id (REGION_ID), instead of --config"},
		&cli.StringFlag{Name: "client-id", Usage: "the user pool's app client id, instead of --config"},
		&cli.StringFlag{Name: "identity-pool-id", Usage: "Cognito identity pool id (REGION:UUID), instead of --config"},
		&cli.StringFlag{Name: "region", Usage: "region of the pools (default: the config's)"},
		&cli.StringFlag{Name: "user-pool-endpoint", Usage: "Cognito user pool endpoint URL (default: AWS, or $AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER)"},
		&cli.StringFlag{Name: "identity-pool-endpoint", Usage: "Cognito identity pool endpoint URL (default: AWS, or $AWS_ENDPOINT_URL_COGNITO_IDENTITY)"},
		&cli.StringFlag{Name: "user", Aliases: []string{"username"}, Usage: "the user to sign in as, or whose stored session to use"},
	}
}

// poolFromFlags reads the pools from --config, overridden by the flags.
func poolFromFlags(c *cli.Context, appConfig *amplifyconfig.Config) auth.Pool {
	var p auth.Pool
	if appConfig != nil {
		p = auth.Pool{Region: appConfig.AuthRegion, UserPoolID: appConfig.UserPoolID,
			ClientID: appConfig.UserPoolClientID, IdentityPoolID: appConfig.IdentityPoolID}
		if p.Region == "" {
			p.Region = appConfig.Region
		}
	}
	set := func(dst *string, flag string) {
		if v := c.String(flag); v != "" {
			*dst = v
		}
	}
	set(&p.UserPoolID, "user-pool-id")
	set(&p.ClientID, "client-id")
	set(&p.IdentityPoolID, "identity-pool-id")
	set(&p.Region, "region")
	set(&p.UserPoolEndpoint, "user-pool-endpoint")
	set(&p.IdentityPoolEndpoint, "identity-pool-endpoint")
	return p
}

func loadAppConfig(c *cli.Context) (*amplifyconfig.Config, error) {
	path := c.String("config")
	if path == "" {
		return nil, nil
	}
	cfg, err := amplifyconfig.Load(path)
	if err != nil {
		return nil, userErrorf("--config: %v", rootCause(err, 0))
	}
	return cfg, nil
}

func loginCommand() *cli.Command {
	return &cli.Command{
		Name:  "login",
		Usage: "sign in to the app's Cognito user pool and keep the session for mount",
		Flags: append(append(cognitoFlags(),
			&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from the first line of stdin (a new one, when the pool demands it, from the second)"},
			&cli.BoolFlag{Name: "password-auth", Usage: "use USER_PASSWORD_AUTH instead of SRP (only if the app client allows it)"},
		), logFlags()...),
		Action: runLogin,
	}
}

func runLogin(c *cli.Context) error {
	log, err := newLogger(c, os.Stderr)
	if err != nil {
		return err
	}
	appConfig, err := loadAppConfig(c)
	if err != nil {
		return err
	}
	pool := poolFromFlags(c, appConfig)
	if err := pool.Validate(true); err != nil {
		return userErrorf("%v", err)
	}
	in := newPrompter(c.Bool("password-stdin"))
	username := c.String("user")
	if username == "" {
		if username, err = in.line("Username: "); err != nil {
			return err
		}
	}
	password, err := in.secret("Password: ")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, cognitoTimeout)
	defer cancel()
	stored, err := auth.Login(ctx, pool, username, password, auth.SignInOptions{
		PasswordAuth: c.Bool("password-auth"),
		Logger:       log,
		NewPassword: func() (string, error) {
			fmt.Fprintln(os.Stderr, "This user must choose a new password.")
			p1, err := in.secret("New password: ")
			if err != nil || in.stdin {
				return p1, err
			}
			p2, err := in.secret("New password again: ")
			if err != nil {
				return "", err
			}
			if p1 != p2 {
				return "", userErrorf("the two new passwords differ: run 'ampfs login' again")
			}
			return p1, nil
		},
	})
	if err != nil {
		return userErrorf("sign-in as %s failed: %v", username, err)
	}
	dir, err := auth.SessionDir()
	if err != nil {
		return userErrorf("%v", err)
	}
	if err := stored.Save(dir); err != nil {
		return userErrorf("saving the session: %v", err)
	}
	fmt.Printf("Signed in as %s (identity %s). Session kept in %s (readable by you only).\n", username, stored.IdentityID, stored.Path())
	return nil
}

func logoutCommand() *cli.Command {
	return &cli.Command{
		Name:  "logout",
		Usage: "revoke and delete the stored session",
		Flags: append(cognitoFlags(), logFlags()...),
		Action: withSession(func(ctx context.Context, s *auth.StoredSession, log zerolog.Logger) error {
			if err := auth.Logout(ctx, s, log); err != nil {
				return userErrorf("%v", err)
			}
			fmt.Printf("Signed out %s.\n", s.Username)
			return nil
		}),
	}
}

func whoamiCommand() *cli.Command {
	return &cli.Command{
		Name:  "whoami",
		Usage: "show the signed-in user, identity id and credential expiry",
		Flags: append(cognitoFlags(), logFlags()...),
		Action: withSession(func(ctx context.Context, s *auth.StoredSession, log zerolog.Logger) error {
			sess, err := auth.Resume(ctx, s, log)
			if err != nil {
				return userErrorf("%s: %v", s.Username, err)
			}
			exp := sess.CredentialsExpire()
			fmt.Printf("user         %s\nidentity id  %s\n", s.Username, sess.IdentityID)
			if len(sess.Groups) > 0 {
				fmt.Printf("groups       %s\n", strings.Join(sess.Groups, ", "))
			}
			fmt.Printf("user pool    %s (%s)\ncredentials  expire %s (in %s)\n", s.Pool.UserPoolID, s.Pool.Region,
				exp.Local().Format(time.RFC3339), time.Until(exp).Round(time.Second))
			return nil
		}),
	}
}

// storedSession finds the session --config/--user-pool-id and --user name.
func storedSession(c *cli.Context) (*auth.StoredSession, error) {
	appConfig, err := loadAppConfig(c)
	if err != nil {
		return nil, err
	}
	pool := poolFromFlags(c, appConfig)
	dir, err := auth.SessionDir()
	if err != nil {
		return nil, userErrorf("%v", err)
	}
	s, err := auth.FindSession(dir, pool.UserPoolID, c.String("user"))
	if err != nil {
		return nil, userErrorf("%v", err)
	}
	// Endpoint flags apply to this run, not only to the login.
	if pool.UserPoolEndpoint != "" {
		s.Pool.UserPoolEndpoint = pool.UserPoolEndpoint
	}
	if pool.IdentityPoolEndpoint != "" {
		s.Pool.IdentityPoolEndpoint = pool.IdentityPoolEndpoint
	}
	return s, nil
}

// prompter asks on the terminal, or reads lines from stdin for scripts.
type prompter struct {
	stdin  bool
	reader *bufio.Reader
}

func newPrompter(stdin bool) *prompter {
	return &prompter{stdin: stdin, reader: bufio.NewReader(os.Stdin)}
}

func (p *prompter) line(prompt string) (string, error) {
	if !p.stdin && !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", userErrorf("no terminal to ask on: give --user, and --password-stdin with the password on stdin")
	}
	if !p.stdin {
		fmt.Fprint(os.Stderr, prompt)
	}
	s, err := p.reader.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || s == "") {
		return "", userErrorf("reading %s: stdin ended", strings.TrimSuffix(strings.ToLower(prompt), ": "))
	}
	return strings.TrimRight(s, "\r\n"), nil
}

func (p *prompter) secret(prompt string) (string, error) {
	if p.stdin {
		return p.line(prompt)
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", userErrorf("no terminal to ask for the password on: use --password-stdin")
	}
	fmt.Fprint(os.Stderr, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", userErrorf("reading the password: %v", err)
	}
	return string(b), nil
}

// withSession is the common start of the commands that act on the stored
// session (logout, whoami): the logger, the session --config/--user name,
// and a bounded context for Cognito.
func withSession(f func(ctx context.Context, s *auth.StoredSession, log zerolog.Logger) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		log, err := newLogger(c, os.Stderr)
		if err != nil {
			return err
		}
		s, err := storedSession(c)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(c.Context, cognitoTimeout)
		defer cancel()
		return f(ctx, s, log)
	}
}
