"""Channel adapters: the only code that knows a wire format."""
