"""DevStack Core reference API, routes written in code."""
