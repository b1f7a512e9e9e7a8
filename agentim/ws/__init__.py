"""The hub's own listener and WebSocket transport (DECISIONS D22), and the sessions on it."""
