"""The porting programs: short Agent Framework 1.x programs in the style of its samples and docs.

Each runs as written on Agent Framework and, with only `agent_framework` -> `agent_core` in its imports, on
agent_core. The client line is the same on both (`OpenAIChatClient` is the Responses API client of both).
"""

CLIENT = """
client = OpenAIChatClient(model="echo-1", api_key="test-key", base_url=os.environ["ECHO_BASE_URL"])
"""

PROGRAMS: dict[str, str] = {}


def program(name: str, source: str) -> None:
    PROGRAMS[name] = source.replace("{CLIENT}", CLIENT.strip())


program(
    "multi_turn",
    """
import os
from agent_framework.openai import OpenAIChatClient

{CLIENT}
agent = client.as_agent(name="Joker", instructions="You are good at telling jokes.")
session = agent.create_session()
result = await agent.run("Tell me a joke about a pirate.", session=session)
print(f"Agent: {result}")
result = await agent.run("Now add some emojis to the joke.", session=session)
print(f"Agent: {result}")
""",
)

program(
    "streaming",
    """
import os
from agent_framework.openai import OpenAIChatClient

{CLIENT}
agent = client.as_agent(name="Storyteller", instructions="Tell short stories.")
session = agent.create_session()
print("Agent: ", end="")
async for update in agent.run("Tell me a story", session=session, stream=True):
    if update.text:
        print(update.text, end="", flush=True)
print()
result = await agent.run("What happened next?", session=session)
print(f"Agent: {result.text}")
""",
)

program(
    "function_tool",
    '''
import os
from typing import Annotated
from pydantic import Field
from agent_framework import tool
from agent_framework.openai import OpenAIChatClient


@tool(approval_mode="never_require")
def get_weather(location: Annotated[str, Field(description="The location to get the weather for.")]) -> str:
    """Get the weather for a given location."""
    return f"The weather in {location} is cloudy with a high of 15C."


{CLIENT}
agent = client.as_agent(name="WeatherAgent", instructions="You are a helpful weather agent.", tools=[get_weather])
result = await agent.run("get_weather(Amsterdam)")
print(f"Agent: {result}")
''',
)

program(
    "approvals",
    '''
import os
from typing import Annotated
from agent_framework import Message, tool
from agent_framework.openai import OpenAIChatClient


@tool(approval_mode="always_require")
def delete_file(path: Annotated[str, "The file to delete"]) -> str:
    """Delete a file."""
    return f"deleted {path}"


{CLIENT}
agent = client.as_agent(name="FileAgent", tools=[delete_file])
session = agent.create_session()
result = await agent.run("delete_file(notes.txt)", session=session)
for request in result.user_input_requests:
    print(f"Approval needed: {request.function_call.name}({request.function_call.arguments})")
    approval = request.to_function_approval_response(approved=True)
    result = await agent.run(Message("user", [approval]), session=session)
print(f"Agent: {result}")
''',
)

program(
    "context_provider",
    """
import os
from typing import Any
from agent_framework import ContextProvider, SessionContext
from agent_framework.openai import OpenAIChatClient


class UserInfoProvider(ContextProvider):
    def __init__(self) -> None:
        super().__init__(source_id="user_info")

    async def before_run(self, *, agent: Any, session: Any, context: SessionContext, state: dict[str, Any]) -> None:
        state["runs"] = state.get("runs", 0) + 1
        context.instructions.append("The user's name is Ada.")


{CLIENT}
agent = client.as_agent(name="Assistant", instructions="Be brief.", context_providers=[UserInfoProvider()])
session = agent.create_session()
result = await agent.run("What is my name?", session=session)
print(f"Agent: {result}")
result = await agent.run("And again?", session=session)
print(f"runs: {session.state['user_info']['runs']}")
""",
)

program(
    "history_provider",
    """
import os
from collections.abc import Sequence
from typing import Any
from agent_framework import Agent, HistoryProvider, Message
from agent_framework.openai import OpenAIChatClient

STORE: dict[str, list[Message]] = {}


class DictHistoryProvider(HistoryProvider):
    def __init__(self) -> None:
        super().__init__("dict_history")

    async def get_messages(
        self, session_id: str | None, *, state: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Message]:
        return list(STORE.get(session_id or "", []))

    async def save_messages(
        self, session_id: str | None, messages: Sequence[Message], *, state: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        STORE.setdefault(session_id or "", []).extend(messages)


{CLIENT}
agent = Agent(
    client=client,
    name="Remembering",
    instructions="Be brief.",
    context_providers=[DictHistoryProvider()],
    default_options={"store": False, "temperature": 0.2},
)
session = agent.create_session(session_id="conv-1")
await agent.run("I like green tea.", session=session)
result = await agent.run("What do I like?", session=session)
print(f"Agent: {result}")
print(f"stored: {[m.role for m in STORE['conv-1']]}")
""",
)

program(
    "chat_options",
    """
import os
from agent_framework.openai import OpenAIChatClient

{CLIENT}
agent = client.as_agent(name="Tuned", instructions="Be brief.")
result = await agent.run(
    "Say hello.", options={"max_tokens": 64, "temperature": 0.3, "top_p": 0.9, "instructions": "Answer in French."}
)
print(f"Agent: {result}")
""",
)

program(
    "max_invocations",
    '''
import os
from agent_framework import tool
from agent_framework.openai import OpenAIChatClient

CALLS: list[str] = []


@tool(max_invocations=1)
def ping(target: str) -> str:
    """Ping a host."""
    CALLS.append(target)
    return f"pong from {target}"


{CLIENT}
agent = client.as_agent(name="Pinger", tools=[ping])
await agent.run("ping(a)")
await agent.run("ping(b)")
print(f"executed: {CALLS}")
print(f"invocation_count: {ping.invocation_count}")
''',
)

program(
    "invocation_context",
    '''
import os
from agent_framework import FunctionInvocationContext, tool
from agent_framework.openai import OpenAIChatClient


@tool
def add_to_cart(item: str, ctx: FunctionInvocationContext) -> str:
    """Add an item to the user's cart."""
    cart = ctx.session.state.setdefault("cart", [])
    cart.append(item)
    return f"added {item} for {ctx.kwargs['user_id']}"


{CLIENT}
agent = client.as_agent(name="Shop", tools=[add_to_cart])
session = agent.create_session()
result = await agent.run("add_to_cart(apples)", session=session, function_invocation_kwargs={"user_id": "u-42"})
print(f"Agent: {result}")
print(f"cart: {session.state['cart']}")
print(f"schema: {sorted(add_to_cart.parameters()['properties'])}")
''',
)

program(
    "service_session",
    """
import os
from agent_framework.openai import OpenAIChatClient

{CLIENT}
agent = client.as_agent(name="Stored", instructions="Be brief.", default_options={"store": True})
session = agent.create_session()
await agent.run("My name is Grace.", session=session)
print(f"service id: {str(session.service_session_id)[:5]}")
result = await agent.run("What is my name?", session=session)
print(f"Agent: {result}")
""",
)

program(
    "resume_session",
    """
import json
import os
from agent_framework import AgentSession
from agent_framework.openai import OpenAIChatClient

{CLIENT}
agent = client.as_agent(name="Resumer", default_options={"store": False})
session = agent.create_session()
await agent.run("Remember the number 7.", session=session)
saved = json.dumps(session.to_dict())
restored = AgentSession.from_dict(json.loads(saved))
result = await agent.run("What number?", session=restored)
print(f"same id: {restored.session_id == session.session_id}")
print(f"Agent: {result}")
""",
)

program(
    "image_input",
    """
import os
from agent_framework import Content, Message
from agent_framework.openai import OpenAIChatClient

{CLIENT}
agent = client.as_agent(name="Vision", instructions="Describe images.")
message = Message(
    role="user",
    contents=[
        Content.from_text(text="What do you see?"),
        Content.from_uri(uri="https://example.com/cat.png", media_type="image/png"),
    ],
)
result = await agent.run(message)
print(f"Agent: {result}")
""",
)

program(
    "image_bytes",
    """
import os
from agent_framework import Content, Message
from agent_framework.openai import OpenAIChatClient

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")

{CLIENT}
agent = client.as_agent(name="Vision")
result = await agent.run(Message("user", ["Describe this.", Content.from_data(data=PNG, media_type="image/png")]))
print(f"Agent: {result}")
""",
)

program(
    "run_tools",
    '''
import os
from agent_framework import tool
from agent_framework.openai import OpenAIChatClient


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"12:00 in {city}"


{CLIENT}
agent = client.as_agent(name="Clock")
result = await agent.run("get_time(Oslo)", tools=[get_time])
print(f"Agent: {result}")
''',
)

program(
    "usage_and_author",
    """
import os
from agent_framework.openai import OpenAIChatClient

{CLIENT}
agent = client.as_agent(name="Counter")
result = await agent.run("Count my words please")
print(f"author: {result.messages[-1].author_name}")
print(f"role: {result.messages[-1].role}")
print(f"tokens: {result.usage_details['output_token_count'] > 0}")
print(f"Agent: {result}")
""",
)

program(
    "messages_in",
    """
import os
from agent_framework import Message
from agent_framework.openai import OpenAIChatClient

{CLIENT}
agent = client.as_agent(name="Lister")
messages = [
    Message("user", ["First question."]),
    Message("assistant", ["First answer."]),
    Message("user", ["Second question."]),
]
round_trip = [Message.from_dict(m.to_dict()) for m in messages]
result = await agent.run(round_trip)
print(f"Agent: {result}")
""",
)

program(
    "async_with_defaults",
    """
import os
from agent_framework import Agent
from agent_framework.openai import OpenAIChatClient

{CLIENT}
async with Agent(client, "You are terse.", name="Terse", default_options={"max_tokens": 32}) as agent:
    result = await agent.run("Hello there")
    print(f"Agent: {result}")
""",
)
program(
    "structured_output",
    """
import os
from pydantic import BaseModel
from agent_framework.openai import OpenAIChatClient


class CityInfo(BaseModel):
    city: str
    population: int


{CLIENT}
agent = client.as_agent(name="Extractor", instructions="Extract city facts.")
result = await agent.run("Paris has 2 million people.", options={"response_format": CityInfo})
info = result.value
print(f"type: {type(info).__name__}")
print(f"city: {info.city}")
print(f"population: {info.population}")
""",
)
