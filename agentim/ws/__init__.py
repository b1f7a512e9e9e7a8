"""The hub's own listener and WebSocket transport (DIFFERENCES D22), and the sessions on it."""
