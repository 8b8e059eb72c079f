"""`hedged command ACTION`: send a signed command to a running keeper over MQTT and print its answer.

For the operator's machine: it signs with the secret named by `[mqtt] command_secret_env` and connects
as the operator (`--username`, `--password-env`), not as the keeper.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import TYPE_CHECKING, Annotated

import typer

from hedged.clikit import EXIT_NO_ANSWER, ConfigOpt, ReasonOpt, fail, load_or_exit

if TYPE_CHECKING:
    from hedged.config import Config

# Kept in step with hedged.alerts.commands.COMMANDS (tests/test_cli_imports.py checks), so that the help
# text does not import the alerts package.
ACTIONS = "pause, resume, halt, reduce-only"


def command(
    action: Annotated[str, typer.Argument(help=f"One of: {ACTIONS}.")],
    config: ConfigOpt,
    reason: ReasonOpt = "",
    username: Annotated[str, typer.Option(help="Broker user (default: mqtt.username from the config).")] = "",
    password_env: Annotated[str, typer.Option(help="Variable holding the broker password.")] = "",
    wait: Annotated[float, typer.Option(help="Seconds to wait for the keeper's answer.")] = 10.0,
) -> None:
    """Send a signed pause|resume|halt|reduce-only; exit 0 if the keeper accepted it, 1 if refused."""
    from hedged.alerts.commands import COMMANDS
    from hedged.config import ConfigError

    if action not in COMMANDS:
        fail(f"action: expected one of {ACTIONS}, got {action!r}")
    cfg = load_or_exit(config)
    if not cfg.mqtt.commands:
        fail("mqtt.commands: commands are off in this config (set commands = true and command_secret_env)")
    try:
        secret = cfg.mqtt.command_secret()
        password = os.environ.get(password_env) if password_env else None
        if password_env and not password:
            raise ConfigError([f"--password-env: environment variable {password_env} is not set"])
        if not password_env:
            pw = cfg.mqtt.password(cfg.base_dir)
            password = pw.get_secret_value() if pw else None
    except ConfigError as exc:
        fail(exc.problems[0])
    assert secret is not None
    try:
        verdict = asyncio.run(_send(cfg, action, reason, secret.get_secret_value(), username or cfg.mqtt.username,
                                    password, wait))
    except TimeoutError:
        fail(f"no answer from keeper {cfg.keeper.name} within {wait:.0f}s (is it running with commands on?)",
             EXIT_NO_ANSWER)
    except Exception as exc:  # aiomqtt.MqttError and OSError: one line, never a traceback
        fail(f"mqtt: {type(exc).__name__}: {str(exc)[:200]}", EXIT_NO_ANSWER)
    typer.echo(json.dumps(verdict))
    raise typer.Exit(0 if verdict.get("accepted") else 1)


async def _send(cfg: Config, action: str, reason: str, secret: str, username: str, password: str | None,
                wait: float) -> dict[str, object]:
    import aiomqtt

    from hedged.alerts.commands import signed_command
    from hedged.alerts.mqtt import Topics

    topics = Topics.of(cfg)
    payload = signed_command(secret, action, ts=time.time(), reason=reason)
    nonce = json.loads(json.loads(payload)["body"])["nonce"]
    async with aiomqtt.Client(cfg.mqtt.host, cfg.mqtt.port, username=username or None, password=password,
                              timeout=wait) as client:
        await client.subscribe(topics.cmd_result, qos=1)
        await client.publish(topics.cmd, payload, qos=1)
        async with asyncio.timeout(wait):
            async for message in client.messages:
                body = message.payload if isinstance(message.payload, bytes) else b""
                try:
                    result = json.loads(body)
                except ValueError:
                    continue
                if isinstance(result, dict) and result.get("nonce") == nonce:
                    return result
    raise TimeoutError


def register(app: typer.Typer) -> None:
    app.command("command")(command)
