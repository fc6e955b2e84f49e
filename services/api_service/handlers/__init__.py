"""HTTP handlers: parse the request, call the function that does the work, return JSON."""
