"""The Responses API client every provider shares: messages to input items, output to messages, typed errors."""

from __future__ import annotations

import email.utils
import functools
import math
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx2
import openai

from .agents import Agent
from .exceptions import (
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelError,
    ModelRateLimitError,
    ModelServiceError,
    ModelTimeoutError,
)
from .messages import Content, Message
from .model_api import FinishReason, FunctionCallEvent, ModelRequest, ModelTurn, StreamEvent, TextDelta, UsageDetails
from .providers import ContextProvider
from .tools import FunctionTool, ToolLike


def sdk_options(
    *, timeout: float | None, max_retries: int | None, http_client: httpx2.AsyncClient | None
) -> dict[str, Any]:
    """The optional `AsyncOpenAI` arguments that were given (the SDK's defaults apply to the rest)."""
    options = {"timeout": timeout, "max_retries": max_retries, "http_client": http_client}
    return {k: v for k, v in options.items() if v is not None}


def to_tool_params(tools: Sequence[FunctionTool]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters(),
            "strict": False,
        }
        for t in tools
    ]


def parse_response(response: openai.types.responses.Response) -> ModelTurn:
    """Turn a Responses API response into one assistant message plus ids, usage and why it ended.

    Output text and refusals become text contents, reasoning items `text_reasoning` contents (their encrypted
    content kept as `protected_data`, to be sent back), function calls `function_call`s, and a response error
    an `error` content.
    """
    contents: list[Content] = []
    for item in response.output:
        if item.type == "message":
            for part in item.content:
                if part.type == "output_text":
                    contents.append(Content.from_text(part.text))
                elif part.type == "refusal":
                    contents.append(Content.from_text(part.refusal))
        elif item.type == "function_call":
            contents.append(Content.from_function_call(item.call_id, item.name, item.arguments))
        elif item.type == "reasoning":
            summary = " ".join(s.text for s in item.summary) or None
            contents.append(
                Content.from_text_reasoning(id=item.id, text=summary, protected_data=item.encrypted_content)
            )
    if response.error is not None:
        contents.append(Content.from_error(message=response.error.message, error_code=str(response.error.code)))
    usage = UsageDetails()
    if response.usage is not None:
        usage = UsageDetails(
            input_token_count=response.usage.input_tokens,
            output_token_count=response.usage.output_tokens,
            total_token_count=response.usage.total_tokens,
        )
    conversation_id = response.conversation.id if response.conversation is not None else None
    return ModelTurn(
        Message(role="assistant", contents=contents),
        response.id,
        conversation_id,
        usage,
        finish_reason=_finish_reason(response, contents),
        created_at=datetime.fromtimestamp(response.created_at, UTC).isoformat() if response.created_at else None,
    )


def _finish_reason(response: openai.types.responses.Response, contents: list[Content]) -> FinishReason | None:
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return "content_filter" if reason == "content_filter" else "length"
    if response.status != "completed":
        return None
    return "tool_calls" if any(c.type == "function_call" for c in contents) else "stop"


RETRY_AFTER_MAX_SECONDS = 300.0
"""The longest wait a service may ask for that is passed on; a far-future date means "later", not years."""


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait, from `retry-after-ms` or `retry-after` (seconds or an HTTP date), clamped to
    0-300 s; None when absent or unparsable (`Retry-After: soon`), so callers apply their own default."""
    if headers is None:
        return None
    seconds = _seconds(headers.get("retry-after-ms"), scale=1000)
    if seconds is None:
        seconds = _seconds(headers.get("retry-after"), scale=1)
    if seconds is None:
        seconds = _until(headers.get("retry-after"))
    return None if seconds is None else min(max(seconds, 0.0), RETRY_AFTER_MAX_SECONDS)


def _seconds(value: str | None, *, scale: int) -> float | None:
    try:
        seconds = float(value) / scale if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) else None


def _until(value: str | None) -> float | None:
    """Seconds until an HTTP date (IMF-fixdate and the obsolete forms), or None."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, IndexError):
        return None


def map_openai_error(exc: openai.OpenAIError) -> ModelError:
    """The typed agent_core error for an openai SDK error."""
    if isinstance(exc, openai.APITimeoutError):
        return ModelTimeoutError(f"the model did not answer in time: {exc}")
    if isinstance(exc, openai.APIStatusError):
        status, code = exc.status_code, exc.code
        message = f"model service returned {status}: {exc.message}"
        if status in (429, 503):
            retry_after = _retry_after(exc.response.headers)
            return ModelRateLimitError(message, status_code=status, retry_after=retry_after, code=code)
        if status == 408:
            return ModelTimeoutError(message, status_code=status, code=code)
        if status in (401, 403):
            return ModelAuthenticationError(message, status_code=status, code=code)
        if 400 <= status < 500:
            return ModelBadRequestError(message, status_code=status, code=code)
        return ModelServiceError(message, status_code=status, code=code)
    if isinstance(exc, openai.APIConnectionError):
        return ModelServiceError(f"cannot reach the model service: {exc}")
    return ModelServiceError(f"model call failed: {exc}")


class ResponsesClient:
    """A Responses API client (OpenAI, Azure OpenAI, Foundry) around one shared `AsyncOpenAI`."""

    otel_provider_name: ClassVar[str] = "openai"
    """`gen_ai.provider.name` on this client's telemetry (the GenAI conventions' well-known value)."""

    def __init__(self, *, client: openai.AsyncOpenAI, model: str) -> None:
        self.client = client
        self.model = model

    @functools.cached_property
    def otel_server(self) -> tuple[str | None, int | None]:
        """`server.address` and `server.port` of the model endpoint, for telemetry (parsed once)."""
        url = self.client.base_url
        return url.host or None, url.port or (443 if url.scheme == "https" else 80)

    def as_agent(
        self,
        *,
        name: str | None = None,
        instructions: str | None = None,
        tools: Sequence[ToolLike] | ToolLike | None = None,
        context_providers: Sequence[ContextProvider] | None = None,
        default_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Agent:
        """An Agent that talks through this client (every `Agent` keyword is accepted)."""
        return Agent(
            self,
            instructions,
            name=name,
            tools=tools,
            context_providers=context_providers,
            default_options=default_options,
            **kwargs,
        )

    def _create_args(self, request: ModelRequest) -> dict[str, Any]:
        # The input items are plain JSON already, so they go in `extra_body`, which the SDK sends as is: its
        # typed-params transform walks every item (~0.4 ms each; 0.8 s for a 2,000-message history).
        args: dict[str, Any] = {
            "model": self.model,
            "extra_body": {"input": request.input},
        }
        if request.instructions:
            args["instructions"] = request.instructions
        if request.tools:
            args["tools"] = to_tool_params(request.tools)
        if request.conversation_id:
            args["conversation"] = request.conversation_id
        elif request.previous_response_id:
            args["previous_response_id"] = request.previous_response_id
        if request.store is not None:
            args["store"] = request.store
        args.update(request.options)  # already checked and renamed by agent_core.options
        return args

    async def get_response(self, request: ModelRequest) -> ModelTurn:
        try:
            response = await self.client.responses.create(**self._create_args(request))
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from exc
        return parse_response(response)

    async def stream_response(self, request: ModelRequest) -> AsyncGenerator[StreamEvent, None]:
        """Text deltas and tool calls as they arrive, then the completed turn (always last)."""
        try:
            stream = await self.client.responses.create(**self._create_args(request), stream=True)
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from exc
        try:
            async for event in stream:
                if event.type == "response.output_text.delta":
                    yield TextDelta(event.delta)
                elif event.type == "response.output_item.done" and event.item.type == "function_call":
                    item = event.item
                    yield FunctionCallEvent(Content.from_function_call(item.call_id, item.name, item.arguments))
                elif event.type in ("response.completed", "response.incomplete"):
                    yield parse_response(event.response)
                    return
                elif event.type == "response.failed":
                    error = event.response.error
                    raise ModelServiceError(f"model response failed: {error.message if error else 'unknown error'}")
                elif event.type == "error":
                    raise ModelServiceError(f"model stream error: {event.message}")
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from exc
        finally:
            await stream.close()
        raise ModelServiceError("the model stream ended before the response completed")

    async def create_conversation(self, *, metadata: dict[str, str] | None = None) -> str:
        """Start a server-side conversation (Conversations API); its `conv_…` id stays stable across turns."""
        try:
            conversation = await self.client.conversations.create(metadata=metadata)
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from exc
        return conversation.id

    async def conversation_metadata(self, conversation_id: str) -> dict[str, str] | None:
        """A server-side conversation's metadata (Conversations API retrieve); None if the service has no such one."""
        try:
            conversation = await self.client.conversations.retrieve(conversation_id)
        except openai.NotFoundError:
            return None
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from exc
        metadata = conversation.metadata if isinstance(conversation.metadata, dict) else {}
        return {str(key): str(value) for key, value in metadata.items()}

    async def delete_conversation(self, conversation_id: str) -> bool:
        """Delete a server-side conversation; False if the service no longer has it."""
        try:
            await self.client.conversations.delete(conversation_id)
        except openai.NotFoundError:
            return False
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from exc
        return True

    async def close(self) -> None:
        await self.client.close()
