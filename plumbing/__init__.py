"""Plumbing with no domain of its own: the child-process machinery that the SQLite writer
process and the MIME parser processes share, and the webhook signature algorithms that the
notifiers and the intake share."""
