"""Identity: tenants, users and their roles, sign-in, sessions, API tokens, enrolled cameras."""
