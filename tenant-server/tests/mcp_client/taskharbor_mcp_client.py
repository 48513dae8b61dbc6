"""Drives TaskHarbor's /mcp endpoint with the official Python MCP SDK (`mcp`
on PyPI), so the server is checked by a client nobody here wrote.

Run by tests/api/mcp.rs; each scenario prints ONE JSON object on stdout
that the Rust test asserts on. Tokens come from the environment
(TASKHARBOR_TOKEN, TASKHARBOR_TOKEN_B), never from argv.

    python taskharbor_mcp_client.py http-loop  --url URL
    python taskharbor_mcp_client.py stdio-loop --url URL --bin PATH/taskharbor
    python taskharbor_mcp_client.py modern-loop --url URL
    python taskharbor_mcp_client.py race       --url URL --rounds N
    python taskharbor_mcp_client.py refused    --url URL
    python taskharbor_mcp_client.py read-only  --url URL --item ID
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


@asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(30.0, read=60.0)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@asynccontextmanager
async def stdio_session(binary: str, url: str, token: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=binary,
        args=["mcp", "--url", url],
        env={"TASKHARBOR_TOKEN": token},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def structured(result: Any) -> dict[str, Any]:
    """A tool result's structured content (or its JSON text)."""
    if result.structured_content is not None:
        return result.structured_content
    for block in result.content:
        text = getattr(block, "text", None)
        if text:
            return json.loads(text)
    return {}


async def call(session: ClientSession, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await session.call_tool(tool, args)
    return {"is_error": bool(result.is_error), "value": structured(result)}


async def agent_loop(session: ClientSession) -> dict[str, Any]:
    out: dict[str, Any] = {}
    init = session.initialize_result if hasattr(session, "initialize_result") else None
    if init is not None:
        out["server"] = init.server_info.name
        out["protocol_version"] = init.protocol_version
    tools = await session.list_tools()
    out["tools"] = sorted(t.name for t in tools.tools)
    out["annotated"] = all(
        t.annotations is not None
        and t.annotations.read_only_hint is not None
        and t.annotations.destructive_hint is not None
        for t in tools.tools
    )
    guide = await session.read_resource("taskharbor://guide")
    out["guide_mentions_checkpoint"] = any("checkpoint" in getattr(c, "text", "") for c in guide.contents)
    templates = await session.list_resource_templates()
    out["templates"] = [t.uri_template for t in templates.resource_templates]

    claimed = await call(session, "claim_next", {})
    out["claim_next"] = claimed
    item_id = claimed["value"].get("id")
    if item_id is None:
        return out
    token = claimed["value"]["claim"]["token"]
    item_resource = await session.read_resource(f"taskharbor://items/{item_id}")
    out["resource_item_id"] = json.loads(item_resource.contents[0].text)["id"]
    out["progress"] = await call(
        session, "add_progress", {"item_id": item_id, "note": "did the first step", "claim_token": token}
    )
    out["complete"] = await call(session, "complete", {"item_id": item_id, "note": "all done", "claim_token": token})
    out["after"] = await call(session, "get_item", {"item_id": item_id})
    return out


async def http_loop(args: argparse.Namespace) -> dict[str, Any]:
    async with http_session(args.url, os.environ["TASKHARBOR_TOKEN"]) as session:
        return await agent_loop(session)


async def stdio_loop(args: argparse.Namespace) -> dict[str, Any]:
    async with stdio_session(args.bin, args.url, os.environ["TASKHARBOR_TOKEN"]) as session:
        return await agent_loop(session)


async def modern_loop(args: argparse.Namespace) -> dict[str, Any]:
    """The SDK's default high-level `Client` ("auto": discovery, the stateless
    2026-07-28 protocol when the server offers it)."""
    from mcp import Client

    headers = {"Authorization": f"Bearer {os.environ['TASKHARBOR_TOKEN']}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http:
        async with Client(streamable_http_client(args.url, http_client=http)) as client:
            tools = await client.list_tools()
            claimed = await client.call_tool("claim_next", {})
            value = structured(claimed)
            out: dict[str, Any] = {
                "protocol_version": client.protocol_version,
                "tools": sorted(t.name for t in tools.tools),
                "claimed_id": value.get("id"),
            }
            if value.get("id") is not None:
                token = value["claim"]["token"]
                progress = await client.call_tool(
                    "add_progress", {"item_id": value["id"], "note": "modern step", "claim_token": token}
                )
                done = await client.call_tool("complete", {"item_id": value["id"], "claim_token": token})
                out["progress_error"] = bool(progress.is_error)
                out["status"] = structured(done).get("status")
            return out


async def race(args: argparse.Namespace) -> dict[str, Any]:
    """Two clients (two workers) call claim_next at the same moment, again and again."""
    tokens = [os.environ["TASKHARBOR_TOKEN"], os.environ["TASKHARBOR_TOKEN_B"]]
    claims: list[list[int]] = [[], []]
    empty = [0, 0]
    async with http_session(args.url, tokens[0]) as a, http_session(args.url, tokens[1]) as b:
        sessions = [a, b]
        for _ in range(args.rounds):
            results = await asyncio.gather(*(call(s, "claim_next", {}) for s in sessions))
            for n, result in enumerate(results):
                if result["is_error"]:
                    raise RuntimeError(f"claim_next failed: {result}")
                value = result["value"]
                if value.get("claimed"):
                    claims[n].append(value["id"])
                    # Finish it so the claim limit never gets in the way.
                    done = await call(
                        sessions[n], "complete", {"item_id": value["id"], "claim_token": value["claim"]["token"]}
                    )
                    if done["is_error"]:
                        raise RuntimeError(f"complete failed: {done}")
                else:
                    empty[n] += 1
    return {"a": claims[0], "b": claims[1], "empty": empty}


def describe(error: BaseException) -> str:
    """Flattens exception groups (anyio task groups) into one line."""
    parts: list[str] = []

    def walk(e: BaseException) -> None:
        parts.append(f"{type(e).__name__}: {e}")
        for inner in getattr(e, "exceptions", ()) or ():
            walk(inner)
        if e.__cause__ is not None:
            walk(e.__cause__)

    walk(error)
    return " | ".join(parts)


async def attempt(url: str, token: str | None) -> dict[str, Any]:
    try:
        async with asyncio.timeout(20):
            async with http_session(url, token) as session:
                tools = await session.list_tools()
                return {"connected": True, "tools": [t.name for t in tools.tools]}
    except BaseException as error:  # noqa: BLE001 - we report whatever the SDK raised
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return {"connected": False, "error": describe(error)}


async def raw_initialize(url: str, token: str | None) -> dict[str, Any]:
    """The HTTP answer itself, which the SDK reduces to a generic error."""
    headers = {"Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    async with httpx2.AsyncClient() as http:
        response = await http.post(url, json=body, headers=headers)
        return {"status": response.status_code, "www_authenticate": response.headers.get("www-authenticate")}


async def refused(args: argparse.Namespace) -> dict[str, Any]:
    token = os.environ["TASKHARBOR_TOKEN"]
    return {
        "no_token": await attempt(args.url, None) | {"http": await raw_initialize(args.url, None)},
        "revoked": await attempt(args.url, token) | {"http": await raw_initialize(args.url, token)},
    }


async def read_only(args: argparse.Namespace) -> dict[str, Any]:
    async with http_session(args.url, os.environ["TASKHARBOR_TOKEN"]) as session:
        tools = await session.list_tools()
        return {
            "tools": sorted(t.name for t in tools.tools),
            "get_item": await call(session, "get_item", {"item_id": args.item}),
            "claim": await call(session, "claim", {"item_id": args.item}),
            "create_item": await call(session, "create_item", {"board_id": 1, "title": "nope"}),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["http-loop", "stdio-loop", "modern-loop", "race", "refused", "read-only"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--bin")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--item", type=int, default=1)
    args = parser.parse_args()
    scenario = {
        "http-loop": http_loop,
        "stdio-loop": stdio_loop,
        "modern-loop": modern_loop,
        "race": race,
        "refused": refused,
        "read-only": read_only,
    }[args.scenario]
    result = asyncio.run(scenario(args))
    json.dump(result, sys.stdout, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
