"""The function app's service: HTTP API, turns over Table Storage, expiry, runtime, settings, served agents."""
