"""Side effects, one module per area. ``ALL`` lists every activity a worker registers."""
