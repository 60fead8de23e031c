"""One module per CLI command; each exposes ``register(subparsers)``.

A command's ``register`` adds its parser and sets ``handler`` (``Callable[[Namespace], int]``)
as the parser default. Keeping commands apart lets each stay a page long.
"""
