"""Authentication and authorisation of the API: OAuth 2.0 tokens, users, API keys, scopes."""
