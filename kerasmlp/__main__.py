"""`python -m kerasmlp ...`: the same command as `kerasmlp-train ...`."""

from kerasmlp.cli import main

if __name__ == "__main__":  # pragma: no cover
    main(prog_name="kerasmlp-train")
