"""The HTTP layer: routes, middleware, sessions and pages; the only layer that speaks HTTP."""
