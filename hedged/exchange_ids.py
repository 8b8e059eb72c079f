"""The exchange ids ccxt knows (`ccxt.exchanges`), without importing ccxt.

Why: `import ccxt` loads every exchange class (about a second); `hedged config check` must stay fast.
ccxt's `__init__.py` carries the list as a literal (`exchanges = [...]`); it is read from the installed
package's source. If that ever fails (a packaging change), the real `ccxt.exchanges` is imported instead.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cache

_LIST = re.compile(r"^exchanges\s*=\s*(\[.*?\])", re.MULTILINE | re.DOTALL)


@cache
def ccxt_exchanges() -> frozenset[str]:
    """Every exchange id of the installed ccxt (e.g. 'bybit', 'binance', 'binanceusdm')."""
    try:
        spec = importlib.util.find_spec("ccxt")
        if spec is not None and spec.origin:
            with open(spec.origin, encoding="utf-8") as f:
                m = _LIST.search(f.read())
            if m:
                ids = ast.literal_eval(m.group(1))
                if isinstance(ids, list) and ids and all(isinstance(x, str) for x in ids):
                    return frozenset(ids)
    except (OSError, ValueError, SyntaxError):
        pass
    import ccxt

    return frozenset(ccxt.exchanges)


def unknown_exchange(exchange_id: str) -> str | None:
    """None if ccxt knows the id; else what was expected, with the nearest ids as a hint."""
    ids = ccxt_exchanges()
    if exchange_id in ids:
        return None
    import difflib

    near = difflib.get_close_matches(exchange_id, sorted(ids), n=3, cutoff=0.7)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return f"unknown exchange {exchange_id!r}: expected a ccxt exchange id such as bybit or binance{hint}"
