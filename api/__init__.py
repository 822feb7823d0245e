"""smsgw HTTP APIs: one module per provider dialect over gateway.service."""
