"""The yardstick of bench_accept: a bare aiohttp app that only parses the send_sms form the
same way (strict UTF-8 pairs) and answers JSON. Run as `python -m tests.bench.bare_form PORT`."""

from __future__ import annotations

import sys

from aiohttp import web

from api.forms import decode_pairs


async def send(request: web.Request) -> web.Response:
    pairs = decode_pairs(request.rel_url.raw_query_string.encode("latin-1", "replace"))
    pairs.extend(decode_pairs(await request.read()))
    form = dict(pairs)
    if not form.get("message"):
        return web.json_response({"error": "missing", "error_code": "7"})
    return web.json_response({"batch_id": "1_1_1", "total": "1"})


def main() -> None:
    app = web.Application()
    for path in ("/api_v1", "/v1/messages"):
        app.router.add_post(path, send)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
