"""Operations console: the authenticated REST API and (later) the web pages."""
