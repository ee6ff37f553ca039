"""Routing: the catalog, the rules and the pure engine that decides where a message goes."""
