"""Outbound notifications: templates, the outbox and (later) the dispatcher and notifiers."""
