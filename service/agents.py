"""The agents this function app serves, registered in code: route name -> AgentSpec."""

from __future__ import annotations

from agent_core import tool

from .runtime import AgentSpec
from .settings import AppSettings


@tool(approval_mode="never_require")
def search_products(query: str) -> str:
    """Search product catalog."""
    return f"Found 3 products matching '{query}'"


@tool(approval_mode="never_require")
def check_inventory(product_id: str) -> str:
    """Check product inventory."""
    return f"Product {product_id} has 42 units in stock"


@tool(approval_mode="always_require")
def place_order(product_id: str, quantity: int = 1) -> str:
    """Place an order for a product (a person approves each order)."""
    return f"Ordered {quantity} x {product_id}"


def _general_instructions(settings: AppSettings) -> str:
    return settings.general_instructions


AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec(
            name="shopping",
            description="The reference page's shopping assistant: searches the catalog and checks inventory.",
            instructions="You help users shop for products. Be helpful and concise.",
            tools=[search_products, check_inventory, place_order],
        ),
        AgentSpec(
            name="general",
            description="A general assistant; its instructions come from AGENT_GENERAL_INSTRUCTIONS.",
            instructions=_general_instructions,
        ),
    )
}
