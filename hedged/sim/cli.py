"""`hedged emulator`: serve the local exchange until SIGINT/SIGTERM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("emulator")
    def emulator(
        config: Annotated[Path | None, typer.Option("--config", "-c", help="Emulator TOML file.")] = None,
        host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="TCP port; 0 picks a free one.")] = 0,
    ) -> None:
        """Run the local Bybit v5-compatible exchange; prints `listening on URL` once it accepts connections."""
        import asyncio
        import signal
        import sys

        from hedged.sim.server import Emulator
        from hedged.sim.settings import EmulatorConfigError, default_settings, load_settings

        try:
            settings = load_settings(config) if config is not None else default_settings()
        except EmulatorConfigError as exc:
            for line in exc.problems:
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(2) from None

        async def serve() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            emu = Emulator(settings, host=host, port=port)
            try:
                await emu.start()
            except OSError as exc:
                typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror}", err=True)
                raise typer.Exit(2) from None
            print(f"listening on {emu.url}", flush=True)
            try:
                await stop.wait()
            finally:
                await emu.stop()

        asyncio.run(serve())
        sys.stdout.flush()
