"""Inbound channels: each adapter turns its protocol into an InboundMessage and calls accept()."""
