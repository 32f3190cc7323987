"""The `driftwarden` command line (typer). Nothing imports this package; it may import every other one.
"""
