"""HTTP handlers, one module per resource: parse the request, call the registry, render."""
