"""The local HTTP API: strategy scripts and stop buttons reach the desk here, through the same gate.

FastAPI on uvicorn, served on the desk's own event loop (the engine's; no second thread), bound to
127.0.0.1 unless settings say otherwise (and then only over TLS). Every call but the health checks
carries an API client's bearer token; each client has scopes (read, trade, kill) and acts on the
desk as its own actor, ``api:<name>``, with its own rate. Re-arming is never offered here.
"""
