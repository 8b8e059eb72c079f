"""`hedged emulator`: serve the local exchange (Bybit v5, Binance, or both, one port each) until SIGINT/SIGTERM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("emulator")
    def emulator(
        config: Annotated[Path | None, typer.Option("--config", "-c",
                                                    help="Emulator TOML file (for every exchange).")] = None,
        host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="TCP port of the first exchange (the next get the "
                                                         "following ports); 0 picks free ones.")] = 0,
        exchange: Annotated[str, typer.Option("--exchange", "-e", help="bybit, binance, or a comma-separated "
                                                                      "list such as bybit,binance.")] = "bybit",
    ) -> None:
        """Run the local exchange; prints `listening on URL (EXCHANGE)` per exchange, in the order given, once
        each accepts connections. Every exchange has the account demo-key/demo-secret."""
        import asyncio
        import signal
        import sys

        from hedged.sim.server import EXCHANGES, Emulator
        from hedged.sim.settings import EmulatorConfigError, binance_settings, default_settings, load_settings

        names = [n.strip() for n in exchange.split(",") if n.strip()]
        bad = [n for n in names if n not in EXCHANGES]
        if not names or bad or len(set(names)) != len(names):
            what = f"unknown exchange {bad[0]!r}" if bad else "each exchange at most once"
            typer.echo(f"error: --exchange: {what}; expected a comma-separated list of {', '.join(EXCHANGES)}",
                       err=True)
            raise typer.Exit(2)
        try:
            loaded = load_settings(config) if config is not None else None
        except EmulatorConfigError as exc:
            for line in exc.problems:
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(2) from None

        async def serve() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            emus: list[Emulator] = []
            try:
                for i, name in enumerate(names):
                    settings = loaded or (binance_settings() if name == "binance" else default_settings())
                    emu = Emulator(settings, host=host, port=port + i if port else 0, exchange=name)
                    try:
                        await emu.start()
                    except OSError as exc:
                        typer.echo(f"error: cannot listen on {host}:{emu.port} ({name}): {exc.strerror}", err=True)
                        raise typer.Exit(2) from None
                    emus.append(emu)
                for emu in emus:
                    print(f"listening on {emu.url} ({emu.exchange})", flush=True)
                await stop.wait()
            finally:
                for emu in emus:
                    await emu.stop()

        asyncio.run(serve())
        sys.stdout.flush()
