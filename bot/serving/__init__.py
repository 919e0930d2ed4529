"""Serving: the embedded gunicorn, its hooks, and the background work started after the fork."""
