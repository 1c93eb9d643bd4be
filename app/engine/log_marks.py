"""Lines the worker writes to its log, so that after a crash the parent can tell
whether it died loading the model or warming up (app.engine.repack_guard)."""

LOAD_MARK = "glassbox: loading"
WARM_UP_MARK = "glassbox: warm-up"
