"""Accounts: users and passwords, API keys, browser sessions, one-time codes and links."""
