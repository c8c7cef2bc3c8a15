"""Counting XLA's compilations in a test (JAX's monitoring event for each backend compile)."""

from __future__ import annotations

import jax.monitoring


class CompileCounter:
    """Counts XLA backend compilations while active (``with CompileCounter() as c: ...``)."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __enter__(self):
        self.names: list[str | None] = []  # each compiled program's name, in order
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    @property
    def count(self) -> int:
        return len(self.names)

    def _listen(self, event, duration, **kw):
        if event == self.EVENT:
            self.names.append(kw.get("fun_name"))

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listen)
