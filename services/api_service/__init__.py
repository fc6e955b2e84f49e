"""The REST API: accounts, sign-in, message history and posting."""
