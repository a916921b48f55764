"""Accounts, the domain: platform users and their sessions (sessions.py), passwords, tokens and key
strings (security.py), companies (companies.py), members and invites (members.py), API keys (keys.py),
and the audit and outbox rows they leave (audit.py). Used by the web's resources and the operator CLI;
raises domain errors (adtivity/errors.py) and knows nothing of HTTP."""
