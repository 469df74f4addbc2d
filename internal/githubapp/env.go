package githubapp

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Environment variables read by NewFromEnv (CONTRACT §12.1).
const (
	EnvAppID          = "GITHUB_APP_ID"
	EnvInstallationID = "GITHUB_APP_INSTALLATION_ID"
	EnvPrivateKeyFile = "GITHUB_APP_PRIVATE_KEY_FILE"
	EnvAPIURL         = "GITHUB_API_URL"
)

// envName maps a Config field to the variable that sets it, so errors from
// New name what the operator actually wrote.
func envName(field string) (string, bool) {
	switch field {
	case "AppID":
		return EnvAppID, true
	case "InstallationID":
		return EnvInstallationID, true
	case "PrivateKeyFile":
		return EnvPrivateKeyFile, true
	case "APIBaseURL":
		return EnvAPIURL, true
	}
	return "", false
}

// NewFromEnv builds the provider from the environment. It returns (nil, nil)
// when GITHUB_APP_ID is unset or blank: the GitHub integration is optional.
// Once GITHUB_APP_ID is set, every other setting must be valid, and an error
// (a *ConfigError naming the variable) should stop the server at start,
// rather than surfacing as a failed git fetch inside some agent hours later.
func NewFromEnv(getenv func(string) string, httpClient *http.Client, logger *slog.Logger) (*Provider, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rawID := strings.TrimSpace(getenv(EnvAppID))
	if rawID == "" {
		for _, v := range []string{EnvInstallationID, EnvPrivateKeyFile} {
			if strings.TrimSpace(getenv(v)) != "" {
				logger.Warn("GitHub App provider disabled: "+EnvAppID+" is unset", "set", v)
				break
			}
		}
		return nil, nil
	}
	appID, err := parsePositiveID(rawID)
	if err != nil {
		return nil, &ConfigError{Field: EnvAppID, Err: err}
	}
	rawInst := strings.TrimSpace(getenv(EnvInstallationID))
	if rawInst == "" {
		return nil, &ConfigError{Field: EnvInstallationID, Err: errors.New("is required when " + EnvAppID + " is set")}
	}
	instID, err := parsePositiveID(rawInst)
	if err != nil {
		return nil, &ConfigError{Field: EnvInstallationID, Err: err}
	}
	keyFile := strings.TrimSpace(getenv(EnvPrivateKeyFile))
	if keyFile == "" {
		return nil, &ConfigError{Field: EnvPrivateKeyFile, Err: errors.New("is required when " + EnvAppID + " is set")}
	}
	p, err := New(Config{
		AppID:          appID,
		InstallationID: instID,
		PrivateKeyFile: keyFile,
		APIBaseURL:     getenv(EnvAPIURL),
		HTTPClient:     httpClient,
		Logger:         logger,
	})
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			if name, ok := envName(ce.Field); ok {
				return nil, &ConfigError{Field: name, Err: ce.Err}
			}
		}
		return nil, err
	}
	return p, nil
}

// parsePositiveID parses a GitHub numeric id. The value itself is not echoed
// back: it is not secret, but a mis-pasted variable sometimes is.
func parsePositiveID(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("must be a positive integer")
	}
	return n, nil
}
