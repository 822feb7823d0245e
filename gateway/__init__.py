"""smsgw gateway: the service, store, SIM pool, scheduler and the `smsgw` CLI."""
