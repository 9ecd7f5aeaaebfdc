"""Small helpers every wing uses the same way: atomic and spreadsheet-safe files, project paths, CLI
helpers, quiet third-party output, training progress, the CPU a figure came from, what each step returns.
"""
