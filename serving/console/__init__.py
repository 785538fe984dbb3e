"""The web console: server-rendered pages beside the API, same auth, same origin."""
