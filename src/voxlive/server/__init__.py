"""The only I/O layer: ASGI app, WebSocket connections, HTTP endpoints."""
