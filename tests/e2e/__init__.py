"""Whole-daemon tests."""
