"""A webhook receiver for the benchmarks, in a process of its own (its CPU is not the gateway's).

`python -m tests.bench.webhook_receiver MODE` prints `{"port": N}` when it listens, then serves
until stdin closes and prints `{"requests": N, "bytes_out": B}`. Modes: good (204 at once),
hang (never answers), error (500), redirect (302 to another host), huge (200 and a 100 MB body).
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

HUGE = 100 * 1024 * 1024
ELSEWHERE = "http://198.51.100.7/stolen"  # TEST-NET-2: nobody there; must never be called


async def main(mode: str) -> None:
    stats = {"requests": 0, "bytes_out": 0, "max_bytes_one_answer": 0}
    forever = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        stats["requests"] += 1
        if mode == "hang":
            await forever.wait()
        if mode == "error":
            return web.Response(status=500, text="internal error")
        if mode == "redirect":
            raise web.HTTPFound(ELSEWHERE)
        if mode == "huge":
            response = web.StreamResponse()
            await response.prepare(request)
            chunk = b"x" * 65536
            written = 0
            try:
                while written < HUGE:  # each answer is 100 MB, if the client reads it all
                    await response.write(chunk)
                    written += len(chunk)
            except (ConnectionError, RuntimeError):
                pass
            finally:
                stats["bytes_out"] += written
                stats["max_bytes_one_answer"] = max(stats["max_bytes_one_answer"], written)
            return response
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(json.dumps(stats), flush=True)
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
