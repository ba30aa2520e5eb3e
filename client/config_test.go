package client

import (
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	mod := func(f func(*Config)) Config {
		c := DefaultConfig()
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"default", DefaultConfig(), false},
		{"no endpoints", mod(func(c *Config) { c.Endpoints = nil }), true},
		{"empty endpoint", mod(func(c *Config) { c.Endpoints = []string{"a:1", " "} }), true},
		{"duplicate endpoint", mod(func(c *Config) { c.Endpoints = []string{"a:1", "a:1"} }), true},
		{"zero dial timeout", mod(func(c *Config) { c.DialTimeout = 0 }), true},
		{"zero backoff", mod(func(c *Config) { c.RetryBackoff.Initial = 0 }), true},
		{"max below initial", mod(func(c *Config) { c.RetryBackoff = Backoff{Initial: time.Second, Max: time.Millisecond} }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}
