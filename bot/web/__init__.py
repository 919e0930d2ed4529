"""Web pages: the Flask app, the simulator, the secretary view, /healthz."""
