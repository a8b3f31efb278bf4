"""agent_core: stateful LLM agents on the OpenAI Responses API (Azure OpenAI, Azure AI Foundry, OpenAI)."""

from .agents import Agent, ResponseStream
from .exceptions import (
    AgentCoreError,
    AgentInputError,
    ApprovalError,
    ConfigurationError,
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelError,
    ModelRateLimitError,
    ModelServiceError,
    ModelTimeoutError,
    SessionSerializationError,
    StructuredOutputError,
)
from .messages import Content, Message
from .middleware import (
    AgentContext,
    AgentMiddleware,
    ChatContext,
    ChatMiddleware,
    FunctionMiddleware,
    MiddlewareTermination,
    agent_middleware,
    chat_middleware,
    function_middleware,
)
from .model_api import UsageDetails
from .model_client import ResponsesClient
from .providers import (
    BaseContextProvider,
    BaseHistoryProvider,
    ContextProvider,
    HistoryProvider,
    InMemoryHistoryProvider,
    SessionContext,
    SupportsAgentRun,
)
from .results import AgentResponse, AgentResponseUpdate
from .sessions import AgentSession, register_state_type
from .tools import FunctionInvocationContext, FunctionTool, tool

__all__ = [
    "Agent",
    "AgentContext",
    "AgentCoreError",
    "AgentInputError",
    "AgentMiddleware",
    "AgentResponse",
    "AgentResponseUpdate",
    "AgentSession",
    "ApprovalError",
    "BaseContextProvider",
    "BaseHistoryProvider",
    "ChatContext",
    "ChatMiddleware",
    "ConfigurationError",
    "Content",
    "ContextProvider",
    "FunctionInvocationContext",
    "FunctionMiddleware",
    "FunctionTool",
    "HistoryProvider",
    "InMemoryHistoryProvider",
    "Message",
    "MiddlewareTermination",
    "ModelAuthenticationError",
    "ModelBadRequestError",
    "ModelError",
    "ModelRateLimitError",
    "ModelServiceError",
    "ModelTimeoutError",
    "ResponseStream",
    "ResponsesClient",
    "SessionContext",
    "SessionSerializationError",
    "StructuredOutputError",
    "SupportsAgentRun",
    "UsageDetails",
    "agent_middleware",
    "chat_middleware",
    "function_middleware",
    "register_state_type",
    "tool",
]
