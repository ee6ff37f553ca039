"""Configuration and assembly: settings, the composition root, the scheduler table, the CLI."""
