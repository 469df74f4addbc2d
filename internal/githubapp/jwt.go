package githubapp

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// GitHub rejects app JWTs that live longer than 10 minutes or whose iat is
// in the future by its clock. Backdating iat by 60s absorbs clock drift
// between us and GitHub; exp at +9min keeps the total span at 10 minutes.
const (
	jwtBackdate = 60 * time.Second
	jwtLifetime = 9 * time.Minute
)

// Key parsing errors. Their messages never include key material.
var (
	errNoPEM     = errors.New("no PEM block found")
	errEncrypted = errors.New("encrypted PEM keys are not supported")
	errNotRSA    = errors.New("not an RSA private key")
	errBadKey    = errors.New("not a PKCS#1 or PKCS#8 private key")
)

// parsePrivateKey accepts the key GitHub hands out (PKCS#1, "RSA PRIVATE
// KEY") and its PKCS#8 conversion ("PRIVATE KEY"). Both parsers are tried
// whatever the block type says, because keys get re-wrapped by tooling.
func parsePrivateKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errNoPEM
	}
	if block.Headers["Proc-Type"] != "" || block.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, errEncrypted
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		// The x509 error names the ASN.1 problem, never the bytes, but a
		// fixed message is all an operator needs here.
		return nil, errBadKey
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w (got %T)", errNotRSA, k)
	}
	return rk, nil
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
}

type jwtClaims struct {
	IAT int64  `json:"iat"`
	EXP int64  `json:"exp"`
	ISS string `json:"iss"`
}

// signAppJWT builds the RS256 JWT that authenticates the app itself (not an
// installation) to GitHub. iss is the numeric app id written as a string,
// which GitHub accepts and RFC 7519 (StringOrURI) expects.
func signAppJWT(key *rsa.PrivateKey, appID int64, now time.Time) (string, error) {
	h, err := json.Marshal(jwtHeader{Alg: "RS256", Typ: "JWT"})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(jwtClaims{
		IAT: now.Add(-jwtBackdate).Unix(),
		EXP: now.Add(jwtLifetime).Unix(),
		ISS: strconv.FormatInt(appID, 10),
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	digest := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("githubapp: signing app JWT: %w", err)
	}
	return signingInput + "." + enc.EncodeToString(sig), nil
}
