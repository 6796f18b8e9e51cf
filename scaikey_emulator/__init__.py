"""ScaiKey emulator: a standalone FastAPI app that behaves like ScaiKey for ScaiVault's tests and dev stack.

Run ``python -m scaikey_emulator --host 127.0.0.1 --port PORT [--seed dev|empty|PATH]`` or build the app with
:func:`scaikey_emulator.app.create_app`. All state is in memory; ``/_emulator/...`` is the test-control plane.
See ``docs``-style notes in ``scaikey_emulator/README.md``.
"""
