"""Domain: commands, events, aggregates, handlers, policies and projections."""
