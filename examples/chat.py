"""A multi-turn chat with the shopping agent in the terminal, on the library alone: `python -m examples.chat`.

Uses Azure when AZURE_AI_PROJECT_ENDPOINT or AZURE_OPENAI_ENDPOINT is set, OpenAI when OPENAI_API_KEY is,
and otherwise the offline echo model, in process, so it runs with no account at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx2

from agent_core import AgentSession, ResponsesClient
from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModel
from service.agents import check_inventory, search_products


def make_client() -> tuple[ResponsesClient, str]:
    if os.environ.get("AZURE_AI_PROJECT_ENDPOINT") or os.environ.get("AZURE_OPENAI_ENDPOINT"):
        from agent_core.azure import AzureOpenAIResponsesClient

        return AzureOpenAIResponsesClient(), "Azure"
    if os.environ.get("OPENAI_API_KEY"):
        return OpenAIResponsesClient(), "OpenAI"
    transport = httpx2.ASGITransport(app=EchoModel(label="[offline model]"))
    client = OpenAIResponsesClient(
        model="offline-echo",
        api_key="offline",
        base_url="http://offline-model/v1",
        http_client=httpx2.AsyncClient(transport=transport),
    )
    return client, "the offline echo model (set AZURE_AI_PROJECT_ENDPOINT or AZURE_OPENAI_ENDPOINT for a real one)"


async def main() -> None:
    client, where = make_client()
    agent = client.as_agent(
        name="ShoppingAgent",
        instructions="You help users shop for products. Be helpful and concise.",
        tools=[search_products, check_inventory],
    )
    session = agent.create_session()
    print(f"Shopping Assistant on {where}. Type 'exit' to quit.")
    print("Offline, call a tool by name: search_products(hiking boots)\n")
    for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: input("You: "), None):
        user_input = line.strip()
        if user_input.lower() in ("exit", "quit"):
            break
        if not user_input:
            continue
        print("Agent: ", end="", flush=True)
        async for chunk in agent.run(user_input, session=session, stream=True):
            print(chunk.text, end="", flush=True)
        print()
    saved = json.dumps(session.to_dict())
    restored = AgentSession.from_dict(json.loads(saved))
    print(
        f"\nSession {restored.session_id}: {len(saved)} bytes serialized, history of "
        f"{len(restored.state.get('in_memory', {}).get('messages', []))} messages."
    )
    await client.close()


if __name__ == "__main__":
    asyncio.run(main())
