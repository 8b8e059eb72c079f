"""`python -m hedged` and the `hedged` script: for `run`, stop signals are caught before the (slow) imports,
so a SIGTERM during start-up is an orderly stop (exit 0), not a death by signal."""

import sys


def main() -> None:
    if sys.argv[1:2] == ["run"]:
        from hedged.shutdown import catch_early_signals

        catch_early_signals()
    from hedged.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
