"""`python -m stream.cli` runs the command line."""

from stream.cli.main import main

if __name__ == "__main__":
    main()
