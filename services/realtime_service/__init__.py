"""The Socket.IO gateway: authenticated connections, fan-out of committed messages."""
