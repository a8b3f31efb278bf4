"""One module per measure; each exposes `run(ctx) -> Result`."""
