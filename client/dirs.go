package client

import (
	"fmt"
	"os"
	"path/filepath"
)

// Environment variables that override the directories, for tests and for
// users who keep their profiles elsewhere.
const (
	EnvConfigDir = "TKNOCK_CONFIG_DIR"
	EnvCacheDir  = "TKNOCK_CACHE_DIR"
)

// ConfigDir returns the directory of the profile store: $TKNOCK_CONFIG_DIR
// when set, else os.UserConfigDir()/tknock. It does not create it.
func ConfigDir() (string, error) {
	return userDir(EnvConfigDir, os.UserConfigDir, "config")
}

// CacheDir returns the directory of the window memory: $TKNOCK_CACHE_DIR
// when set, else os.UserCacheDir()/tknock. It does not create it.
func CacheDir() (string, error) {
	return userDir(EnvCacheDir, os.UserCacheDir, "cache")
}

func userDir(env string, base func() (string, error), what string) (string, error) {
	if d := os.Getenv(env); d != "" {
		return d, nil
	}
	d, err := base()
	if err != nil {
		return "", fmt.Errorf("user %s directory: %w (set %s)", what, err, env)
	}
	return filepath.Join(d, "tknock"), nil
}
