"""The `gridwatch` command line."""
