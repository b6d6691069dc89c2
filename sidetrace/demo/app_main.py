"""One process of the sample system: ``python -m sidetrace.demo.app_main CONFIG_JSON``.

The demo supervisor starts one of these per service (beside its sidecar);
SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from sidetrace.demo.topology import AppConfig


def main(argv: list[str]) -> int:
    config = AppConfig.from_json(argv[0])
    if config.service == "payments":
        import signal

        from sidetrace.demo.payments import serve

        async def run() -> None:
            task = asyncio.ensure_future(serve(config))
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, task.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await task

        asyncio.run(run())
        return 0
    import uvicorn

    from sidetrace.demo.http_apps import build_app

    uvicorn.run(
        build_app(config),
        host="127.0.0.1",
        port=config.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop="asyncio",  # grpc.aio (orders' payments client) wants the standard loop
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
