"""The case domain: opening and continuing cases, numbering, events, applying routing
decisions, acknowledgements, and the operations agents run on cases, each executed inside
the write path's transaction."""
