"""Storage: engine and sessions, models, migrations and typed read queries."""
