"""HTTP routes, one module per topic: predictions, health, the served model, metrics, the page at /."""
