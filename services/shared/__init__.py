"""Code both services need: settings helpers, JWT, the message contract, JSON, logging."""
