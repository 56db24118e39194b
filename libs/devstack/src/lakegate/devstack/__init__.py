"""Runs lakegate's infrastructure on one machine without Docker: for `make up` and for the tests."""
