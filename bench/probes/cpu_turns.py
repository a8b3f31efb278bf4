"""Child process: one side of measure #4, alone in its interpreter.

`python -m bench.probes.cpu_turns SIDE BASE_URL TURNS CONVERSATIONS` runs one warm-up conversation, then
CONVERSATIONS conversations of TURNS turns against the echo model, each with its history in memory, and prints
the CPU time (time.process_time: every thread of this process) and wall time per turn as JSON.

Sides: `openai` (the bare SDK's documented call: the floor), `openai_raw` (the same requests with the input items
in `extra_body`, which the SDK sends without its typed-params transform: the cheapest SDK call), `agent_core`,
`maf` (Microsoft Agent Framework). Measure #11 (telemetry on ÷ off) has its own probe, telemetry_pair.py.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

MODEL_ID = "echo-1"
API_KEY = "bench-key"
INSTRUCTIONS = "You are a benchmark assistant. Be concise."
Conversation = Callable[[int], Awaitable[str]]  # runs one conversation of n turns, returns the last reply


def openai_side(base_url: str, *, raw_input: bool = False) -> Conversation:
    """The bare SDK. `raw_input`: the items go in `extra_body`, skipping the SDK's typed-params transform."""
    import openai

    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=base_url, max_retries=0)

    async def conversation(turns: int) -> str:
        history: list[Any] = []
        reply = ""
        for n in range(turns):
            history.append({"role": "user", "content": f"question {n}"})
            if raw_input:
                response = await client.responses.create(
                    model=MODEL_ID, instructions=INSTRUCTIONS, store=False, extra_body={"input": history}
                )
            else:
                response = await client.responses.create(
                    model=MODEL_ID, input=history, instructions=INSTRUCTIONS, store=False
                )
            reply = response.output_text
            history.append({"role": "assistant", "content": reply})
        return reply

    return conversation


def openai_raw_side(base_url: str) -> Conversation:
    return openai_side(base_url, raw_input=True)


def agent_core_side(base_url: str) -> Conversation:
    from agent_core.openai import OpenAIResponsesClient

    agent = OpenAIResponsesClient(MODEL_ID, api_key=API_KEY, base_url=base_url, max_retries=0).as_agent(
        name="bench", instructions=INSTRUCTIONS
    )

    async def conversation(turns: int) -> str:
        session = agent.create_session()
        reply = ""
        for n in range(turns):
            reply = (await agent.run(f"question {n}", session=session)).text
        return reply

    return conversation


def maf_side(base_url: str) -> Conversation:
    maf_openai: Any = importlib.import_module("agent_framework.openai")
    client = maf_openai.OpenAIChatClient(model=MODEL_ID, api_key=API_KEY, base_url=base_url)
    # store=False: history in the session (InMemoryHistoryProvider) and sent whole, as agent_core does locally
    agent = client.as_agent(name="bench", instructions=INSTRUCTIONS, default_options={"store": False})

    async def conversation(turns: int) -> str:
        session = agent.create_session()
        reply = ""
        for n in range(turns):
            reply = str((await agent.run(f"question {n}", session=session)).text)
        return reply

    return conversation


SIDES: dict[str, Callable[[str], Conversation]] = {
    "openai": openai_side,
    "openai_raw": openai_raw_side,
    "agent_core": agent_core_side,
    "maf": maf_side,
}


async def measure(side: str, base_url: str, turns: int, conversations: int) -> dict[str, Any]:
    started = time.perf_counter()
    conversation = SIDES[side](base_url)
    setup_s = time.perf_counter() - started
    warm_reply = await conversation(turns)
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    reply = ""
    for _ in range(conversations):
        reply = await conversation(turns)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    seen = re.search(r"I have seen (\d+) user message", reply)
    return {
        "side": side,
        "turns": turns * conversations,
        "cpu_per_turn_s": cpu / (turns * conversations),
        "wall_per_turn_s": wall / (turns * conversations),
        "setup_s": setup_s,
        "users_seen_at_last_turn": int(seen.group(1)) if seen else -1,
        "warm_reply_ok": warm_reply == reply,
    }


def main() -> None:
    side, base_url, turns, conversations = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(measure(side, base_url, turns, conversations))), flush=True)


if __name__ == "__main__":
    main()
