// Package access is the rule engine of the Amplify layout: for an object key
// and a subject (a guest, a signed-in identity, members of groups), which of
// get, list, write and delete are allowed.
//
// Rules are Amplify Gen2's storage paths, as amplify_outputs.json writes
// them (storage.buckets[].paths): a path pattern ending in "/*" (or "*" for
// the whole bucket), optionally with the owner token
// ${cognito-identity.amazonaws.com:sub} (also written {entity_id}) as one
// segment, mapped to the actions each subject may take:
//
//	"protected/*":                                  {"authenticated": ["get", "list"]},
//	"protected/${cognito-identity.amazonaws.com:sub}/*": {"entityidentity": ["get", "list", "write", "delete"]},
//
// The most specific matching pattern decides alone, which is how Gen2
// subpaths override their parent; a pattern with the owner token matches
// only the subject's own identity id. The Gen1 defaults (Gen1 below) are
// just one such rule set.
//
// The package is pure: no I/O, no locks, safe for concurrent use.
package access

import (
	"fmt"
	"sort"
	"strings"
)

// Rights is a set of allowed actions.
type Rights uint8

// The actions of Amplify's storage rules.
const (
	Get Rights = 1 << iota
	List
	Write
	Delete

	None Rights = 0
	All         = Get | List | Write | Delete
)

// Has reports whether every action in want is allowed.
func (r Rights) Has(want Rights) bool { return r&want == want }

func (r Rights) String() string {
	var parts []string
	for _, a := range []struct {
		r    Rights
		name string
	}{{Get, "get"}, {List, "list"}, {Write, "write"}, {Delete, "delete"}} {
		if r.Has(a.r) {
			parts = append(parts, a.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// Subject is who asks.
type Subject struct {
	// Authenticated is false for a guest (unauthenticated identity).
	Authenticated bool
	// IdentityID is the Cognito identity-pool id ("us-east-1:uuid"); ""
	// when unknown. Owner ("entityidentity") rules need it.
	IdentityID string
	// Groups are the user-pool groups the user belongs to.
	Groups []string
}

// OwnerToken is how amplify_outputs.json writes the owner segment;
// EntityToken is how defineStorage writes it. Both are accepted.
const (
	OwnerToken  = "${cognito-identity.amazonaws.com:sub}"
	EntityToken = "{entity_id}"
)

// Who names a subject class in a rule, as amplify_outputs.json does.
const (
	WhoGuest         = "guest"
	WhoAuthenticated = "authenticated"
	WhoOwner         = "entityidentity"
	whoGroupPrefix   = "groups"
)

// Rule is one path pattern and who may do what below it.
type Rule struct {
	// Pattern as written in the config, e.g. "protected/{entity_id}/*".
	Pattern string
	// Grants by subject class: "guest", "authenticated", "entityidentity",
	// or "groups"+NAME.
	Grants map[string]Rights

	prefix   string // the pattern without "*", token normalised to OwnerToken
	owner    bool   // the pattern has the owner token
	segments []string
}

// Rules is a compiled rule set.
type Rules struct {
	rules []Rule // longest prefix first
}

// New compiles rules from amplify_outputs.json's paths object: pattern →
// subject class → actions ("get", "list", "write", "delete", or "read" for
// get and list).
func New(paths map[string]map[string][]string) (*Rules, error) {
	rs := &Rules{}
	for pattern, grants := range paths {
		r, err := compile(pattern, grants)
		if err != nil {
			return nil, err
		}
		rs.rules = append(rs.rules, r)
	}
	sort.Slice(rs.rules, func(i, j int) bool {
		if len(rs.rules[i].prefix) != len(rs.rules[j].prefix) {
			return len(rs.rules[i].prefix) > len(rs.rules[j].prefix)
		}
		return rs.rules[i].prefix < rs.rules[j].prefix
	})
	return rs, nil
}

// Gen1 returns Amplify Gen1's default access levels: public for everyone
// (guests read), protected readable by signed-in users and writable by the
// owner, private for the owner only, uploads put-only for signed-in users.
func Gen1() *Rules {
	rs, err := New(map[string]map[string][]string{
		"public/*":                       {WhoGuest: {"get", "list"}, WhoAuthenticated: {"get", "list", "write", "delete"}},
		"protected/*":                    {WhoAuthenticated: {"get", "list"}},
		"protected/" + OwnerToken + "/*": {WhoOwner: {"get", "list", "write", "delete"}},
		"private/" + OwnerToken + "/*":   {WhoOwner: {"get", "list", "write", "delete"}},
		"uploads/*":                      {WhoAuthenticated: {"write"}},
	})
	if err != nil {
		panic(err) // a constant rule set
	}
	return rs
}

func compile(pattern string, grants map[string][]string) (Rule, error) {
	if pattern != "*" && !strings.HasSuffix(pattern, "/*") {
		return Rule{}, fmt.Errorf("storage path %q: must end in /*", pattern)
	}
	prefix := strings.TrimSuffix(pattern, "*")
	prefix = strings.ReplaceAll(prefix, EntityToken, OwnerToken)
	segs := strings.Split(strings.TrimSuffix(prefix, "/"), "/")
	if prefix == "" {
		segs = nil
	}
	owner := false
	for _, s := range segs {
		switch {
		case s == OwnerToken:
			if owner {
				return Rule{}, fmt.Errorf("storage path %q: the owner token may appear once", pattern)
			}
			owner = true
		case s == "" || s == "." || s == ".." || strings.ContainsAny(s, "*{}$"):
			return Rule{}, fmt.Errorf("storage path %q: segment %q is not allowed", pattern, s)
		}
	}
	r := Rule{Pattern: pattern, Grants: map[string]Rights{}, prefix: prefix, owner: owner, segments: segs}
	for who, actions := range grants {
		switch {
		case who == WhoGuest, who == WhoAuthenticated, who == WhoOwner,
			strings.HasPrefix(who, whoGroupPrefix) && len(who) > len(whoGroupPrefix):
		default:
			return Rule{}, fmt.Errorf("storage path %q: unknown subject %q (want guest, authenticated, entityidentity or groups<NAME>)", pattern, who)
		}
		if who == WhoOwner && !owner {
			return Rule{}, fmt.Errorf("storage path %q: entityidentity needs %s in the path", pattern, OwnerToken)
		}
		var rights Rights
		for _, a := range actions {
			switch a {
			case "get":
				rights |= Get
			case "list":
				rights |= List
			case "read":
				rights |= Get | List
			case "write":
				rights |= Write
			case "delete":
				rights |= Delete
			default:
				return Rule{}, fmt.Errorf("storage path %q: unknown action %q", pattern, a)
			}
		}
		r.Grants[who] |= rights
	}
	return r, nil
}

// prefixFor is the rule's key prefix for subject s; ok is false for an
// owner rule when s has no identity.
func (r *Rule) prefixFor(s Subject) (string, bool) {
	if !r.owner {
		return r.prefix, true
	}
	if s.IdentityID == "" {
		return "", false
	}
	return strings.Replace(r.prefix, OwnerToken, s.IdentityID, 1), true
}

// rightsFor is what the rule grants s.
func (r *Rule) rightsFor(s Subject) Rights {
	var out Rights
	for who, rights := range r.Grants {
		switch {
		case who == WhoGuest && !s.Authenticated,
			who == WhoAuthenticated && s.Authenticated,
			who == WhoOwner && s.Authenticated && s.IdentityID != "":
			out |= rights
		case strings.HasPrefix(who, whoGroupPrefix):
			for _, g := range s.Groups {
				if who == whoGroupPrefix+g {
					out |= rights
				}
			}
		}
	}
	return out
}

// Allowed returns what s may do with the object key.
func (rs *Rules) Allowed(key string, s Subject) Rights {
	for i := range rs.rules {
		r := &rs.rules[i]
		p, ok := r.prefixFor(s)
		if ok && strings.HasPrefix(key, p) {
			return r.rightsFor(s)
		}
	}
	return None
}

// Rules returns the compiled rules, most specific first.
func (rs *Rules) Rules() []Rule { return rs.rules }

// Prefix is the rule's key prefix with the owner token as OwnerToken.
func (r *Rule) Prefix() string { return r.prefix }

// Owner reports whether the rule's pattern has the owner token.
func (r *Rule) Owner() bool { return r.owner }

// For returns what the rule grants s, and its key prefix for s (ok is
// false when s cannot match an owner rule).
func (r *Rule) For(s Subject) (prefix string, rights Rights, ok bool) {
	p, ok := r.prefixFor(s)
	if !ok {
		return "", None, false
	}
	return p, r.rightsFor(s), true
}
