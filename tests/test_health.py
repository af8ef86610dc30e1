"""Probes, request ids and offline docs."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime

import httpx
import pytest

from app.middleware import _write_access_line, access_log


async def test_healthz_and_readyz_report_ok(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) >= 16
    echoed = await client.get("/healthz", headers={"X-Request-ID": "trace-abc"})
    assert echoed.headers["x-request-id"] == "trace-abc"


async def test_docs_are_served_without_any_cdn(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        assert "cdn." not in html
        assert "https://" not in html.split("<body>")[0]
    assert (await client.get("/docs-assets/swagger-ui-bundle.js")).status_code == 200
    assert (await client.get("/docs-assets/redoc.standalone.js")).status_code == 200


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_each_request_writes_one_json_log_line_with_its_id(
    client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    access_log.setLevel(logging.INFO)  # the test settings log warnings only
    try:
        capfd.readouterr()
        await client.get("/healthz", headers={"X-Request-ID": "trace-log-1"})
        await asyncio.sleep(0)  # lines are written when the loop's current turn ends
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    finally:
        access_log.setLevel(logging.NOTSET)
    [entry] = [line for line in lines if line.get("request_id") == "trace-log-1"]
    assert entry["logger"] == "kezhan.access"
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz", 200)
    assert entry["duration_ms"] >= 0
    assert datetime.fromisoformat(entry["time"]).tzinfo is not None


def test_access_lines_left_by_a_closed_loop_are_written_by_the_next(
    capfd: pytest.CaptureFixture[str],
) -> None:
    async def write(request_id: str) -> None:
        _write_access_line(request_id, "GET", "/healthz", 200, 0.001)

    first = asyncio.new_event_loop()

    def write_then_stop() -> None:
        _write_access_line("left-behind", "GET", "/healthz", 200, 0.001)
        first.stop()  # the loop ends before the flush it just scheduled can run

    first.call_soon(write_then_stop)
    first.run_forever()
    first.close()
    assert "left-behind" not in capfd.readouterr().err

    async def write_and_yield() -> None:
        await write("next-loop")
        await asyncio.sleep(0)

    asyncio.run(write_and_yield())
    ids = [json.loads(line)["request_id"] for line in capfd.readouterr().err.splitlines()]
    assert "left-behind" in ids
    assert "next-loop" in ids
