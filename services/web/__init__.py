"""Staff web: Korean pages rendered from the other services' read APIs."""
