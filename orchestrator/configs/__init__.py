"""Built-in sweep configs (``adabert sweep demo``), read with importlib.resources."""
