"""The aiohttp gateway: HTTP API, SSE, auth, console and the CLI."""
