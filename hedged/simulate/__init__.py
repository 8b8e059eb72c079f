"""`hedged simulate` / `hedged report`: the real decision over seeded price paths on the local exchange's engine.

paths (price paths) → exchange (the engine, driven without HTTP) → runner (config / naive / unhedged rules,
per-step series) → metrics (cost and protection) → output (the run on disk) → report (HTML + PNGs).
"""
