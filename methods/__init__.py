"""The compared methods, one module each (see the methods issue)."""
