"""The email channel: MIME parsing, the SMTP/LMTP server, the IMAP poller and imports."""
