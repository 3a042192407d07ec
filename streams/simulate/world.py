"""The simulated world: tenants, workspaces, api keys, actors, swarms, models, regions, chips.

Built once per run from a seed (:func:`build_world`), so the same seed always yields the same
tenants, ids and mixes. The figures here describe a *plausible default world* for load
generation (who calls what, how big requests are, how fast chips are); they are simulation
parameters, not business data: prices, costs and transfer prices live in the books under
``warehouse/pricing/books/``.

Shape of the world:

* **Tenants** have heavy-tailed sizes (Pareto weights: a few giants, a long tail of small
  customers), a home region (mainland or international), 1-12 workspaces with 1-4 api keys
  each, a pool of human users and a product mix.
* **Products**: ``agent_platform`` (enterprise agent swarms), ``chat_assistant``,
  ``coding_assistant``, ``commerce_assistant`` (channel ``own_product``) and direct API
  clients (product ``api``, channel ``direct_api`` or ``third_party_framework``).
* **Swarms**: every tenant using the agent platform owns a few swarms of 3-12 specialised
  agents (planner, researcher, writer, ...); each agent is pinned to a model.
* **Chips**: domestic accelerators (``domestic-npu-a``, ``domestic-npu-b``) and an imported
  GPU (``imported-gpu-h``) with different prefill and decode throughput, from which the
  serving layer's ``accelerator_ms`` is derived.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import accumulate

from streams.events import Channel

MAINLAND_REGIONS = ("cn-beijing", "cn-hangzhou", "cn-shanghai")
INTERNATIONAL_REGIONS = ("ap-singapore", "us-virginia")
REGIONS = MAINLAND_REGIONS + INTERNATIONAL_REGIONS

#: Hours east of UTC of each region, for the daily curve of human traffic.
REGION_UTC_OFFSET_HOURS = {
    "cn-beijing": 8,
    "cn-hangzhou": 8,
    "cn-shanghai": 8,
    "ap-singapore": 8,
    "us-virginia": -5,
}

MODELS = ("qwen-flash", "qwen-plus", "qwen-max")
PRODUCTS = ("agent_platform", "chat_assistant", "coding_assistant", "commerce_assistant", "api")
CHIP_FAMILIES = ("domestic-npu-a", "domestic-npu-b", "imported-gpu-h")

#: Swarm roles: each agent of a swarm is specialised in one of them.
SWARM_ROLES = (
    "planner",
    "researcher",
    "writer",
    "editor",
    "reviewer",
    "analyst",
    "auditor",
    "coder",
    "tester",
    "marketer",
    "translator",
    "summariser",
)
MIN_SWARM_SIZE = 3
MAX_SWARM_SIZE = 12


@dataclass(frozen=True)
class ChipSpec:
    """Effective throughput of one accelerator for a reference model (``compute_factor`` 1).

    Effective means with the serving layer's continuous batching: chip time is shared by
    the requests in flight, so a request is charged its share.
    """

    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    #: Reading cached input (prefix cache) costs this fraction of a fresh prefill.
    cached_prefill_cost: float = 0.1


#: Domestic chips are slower per chip than the imported GPU but cheaper to run.
CHIPS: dict[str, ChipSpec] = {
    "domestic-npu-a": ChipSpec(prefill_tokens_per_s=5_500, decode_tokens_per_s=2_200),
    "domestic-npu-b": ChipSpec(prefill_tokens_per_s=4_500, decode_tokens_per_s=1_800),
    "imported-gpu-h": ChipSpec(prefill_tokens_per_s=10_000, decode_tokens_per_s=4_000),
}

#: Chip families serving each region, with their share of requests.
REGION_CHIP_MIX: dict[str, dict[str, float]] = {
    **{
        region: {"domestic-npu-a": 0.45, "domestic-npu-b": 0.30, "imported-gpu-h": 0.25}
        for region in MAINLAND_REGIONS
    },
    **{
        region: {"domestic-npu-a": 0.25, "domestic-npu-b": 0.15, "imported-gpu-h": 0.60}
        for region in INTERNATIONAL_REGIONS
    },
}


@dataclass(frozen=True)
class ModelSpec:
    """How heavy a model is to serve and how often it thinks."""

    #: Chip time relative to the reference model (qwen-plus = 1).
    compute_factor: float
    #: Share of requests with thinking (reasoning) enabled.
    thinking_share: float


MODEL_SPECS: dict[str, ModelSpec] = {
    "qwen-flash": ModelSpec(compute_factor=0.25, thinking_share=0.15),
    "qwen-plus": ModelSpec(compute_factor=1.0, thinking_share=0.35),
    "qwen-max": ModelSpec(compute_factor=3.0, thinking_share=0.45),
}

#: Model mix of each product (agents of a swarm each pin one model from this mix).
PRODUCT_MODEL_MIX: dict[str, dict[str, float]] = {
    "agent_platform": {"qwen-flash": 0.30, "qwen-plus": 0.45, "qwen-max": 0.25},
    "chat_assistant": {"qwen-flash": 0.55, "qwen-plus": 0.35, "qwen-max": 0.10},
    "coding_assistant": {"qwen-flash": 0.20, "qwen-plus": 0.50, "qwen-max": 0.30},
    "commerce_assistant": {"qwen-flash": 0.60, "qwen-plus": 0.35, "qwen-max": 0.05},
    "api": {"qwen-flash": 0.45, "qwen-plus": 0.40, "qwen-max": 0.15},
}


@dataclass(frozen=True)
class StreamProfile:
    """Who calls a product, through which channel: one traffic source of a tenant."""

    product: str
    channel: Channel
    #: Share of this source's requests made by agents (the rest by humans).
    agent_share: float
    #: Share of agent requests sent as batch calls.
    agent_batch_share: float = 0.0
    #: Share of human requests sent as batch calls.
    human_batch_share: float = 0.0
    #: Agent requests come from swarms (agent platform) rather than lone agents.
    swarms: bool = False


STREAM_PROFILES: tuple[StreamProfile, ...] = (
    StreamProfile(
        "agent_platform", "own_product", agent_share=0.85, agent_batch_share=0.10, swarms=True
    ),
    StreamProfile("chat_assistant", "own_product", agent_share=0.08),
    StreamProfile("coding_assistant", "own_product", agent_share=0.45, agent_batch_share=0.05),
    StreamProfile("commerce_assistant", "own_product", agent_share=0.35, agent_batch_share=0.05),
    StreamProfile(
        "api", "direct_api", agent_share=0.50, agent_batch_share=0.30, human_batch_share=0.10
    ),
    StreamProfile("api", "third_party_framework", agent_share=1.0, agent_batch_share=0.10),
)


@dataclass(frozen=True)
class Swarm:
    """A team of specialised agents that works on tasks together."""

    swarm_id: str
    workspace_id: str
    api_key_id: str
    #: (actor_id, role, model) of each member; 3 to 12 members.
    agents: tuple[tuple[str, str, str], ...]


@dataclass
class Tenant:
    """A paying customer and everything it owns."""

    tenant_id: str
    #: Relative traffic volume (heavy-tailed across tenants).
    weight: float
    home_region: str
    #: Regions it calls (home first) with cumulative weights for ``random.choices``.
    regions: tuple[str, ...]
    region_cum_weights: tuple[float, ...]
    #: (workspace_id, api_key_id) pairs and cumulative weights.
    keys: tuple[tuple[str, str], ...]
    key_cum_weights: tuple[float, ...]
    human_count: int
    agent_count: int
    swarms: tuple[Swarm, ...] = ()
    #: (profile, weight) of the products and channels this tenant uses.
    profiles: tuple[tuple[StreamProfile, float], ...] = ()
    #: How many swarm tasks it runs at once.
    max_active_tasks: int = 1


@dataclass
class World:
    """Every tenant of a simulation run."""

    seed: int
    tenants: tuple[Tenant, ...] = field(default_factory=tuple)


def _cumulative(weights: list[float]) -> tuple[float, ...]:
    return tuple(accumulate(weights))


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def build_world(seed: int, tenants: int) -> World:
    """A deterministic world of ``tenants`` tenants for ``seed``."""
    if tenants < 1:
        raise ValueError("a world needs at least one tenant")
    rng = random.Random(f"world:{seed}")
    built: list[Tenant] = []
    for number in range(1, tenants + 1):
        tenant_id = f"tn-{number:04d}-{_hex(rng, 6)}"
        # Pareto with alpha ~1.16: the 80/20 shape of customer sizes; capped so one tenant
        # cannot swallow a small world entirely.
        weight = min(rng.paretovariate(1.16), 400.0)
        size = min(weight / 20.0, 1.0)  # 0..1, how big this tenant is
        home = rng.choices(REGIONS, weights=(0.30, 0.25, 0.20, 0.15, 0.10))[0]
        regions = [home]
        if rng.random() < 0.2 + 0.6 * size:
            regions.append(rng.choice([r for r in REGIONS if r != home]))
        region_weights = [0.85, 0.15][: len(regions)]

        keys: list[tuple[str, str]] = []
        key_weights: list[float] = []
        for ws_number in range(1, 2 + int(rng.random() * (1 + 11 * size))):
            workspace_id = f"ws-{number:04d}-{ws_number:02d}"
            for _ in range(rng.randint(1, 4)):
                keys.append((workspace_id, f"ak-{_hex(rng, 16)}"))
                key_weights.append(rng.paretovariate(1.5))

        profiles = _choose_profiles(rng, size)
        swarms: tuple[Swarm, ...] = ()
        if any(profile.swarms for profile, _ in profiles):
            swarms = tuple(
                _build_swarm(rng, tenant_id, keys, index)
                for index in range(1, 2 + int(rng.random() * (2 + 20 * size)))
            )
        built.append(
            Tenant(
                tenant_id=tenant_id,
                weight=weight,
                home_region=home,
                regions=tuple(regions),
                region_cum_weights=_cumulative(region_weights),
                keys=tuple(keys),
                key_cum_weights=_cumulative(key_weights),
                human_count=5 + int(rng.random() * 2000 * size),
                agent_count=2 + int(rng.random() * 200 * size),
                swarms=swarms,
                profiles=profiles,
                max_active_tasks=1 + int(8 * size),
            )
        )
    return World(seed=seed, tenants=tuple(built))


def _choose_profiles(rng: random.Random, size: float) -> tuple[tuple[StreamProfile, float], ...]:
    """A tenant's product mix: big tenants use more products; everyone uses at least one."""
    chosen: list[tuple[StreamProfile, float]] = []
    enterprise = rng.random() < 0.35 + 0.5 * size
    for profile in STREAM_PROFILES:
        if profile.swarms:
            keep = enterprise
        elif profile.product == "api":
            keep = rng.random() < 0.45
        else:
            keep = rng.random() < 0.3 + 0.4 * size
        if keep:
            chosen.append((profile, rng.uniform(0.5, 2.0)))
    if not chosen:
        chosen.append((rng.choice(STREAM_PROFILES), 1.0))
    return tuple(chosen)


def _build_swarm(
    rng: random.Random, tenant_id: str, keys: list[tuple[str, str]], index: int
) -> Swarm:
    size = rng.randint(MIN_SWARM_SIZE, MAX_SWARM_SIZE)
    roles = rng.sample(SWARM_ROLES, size)
    if "planner" in roles:  # the planner speaks first: put it first
        roles.remove("planner")
        roles.insert(0, "planner")
    swarm_id = f"sw-{tenant_id[3:7]}-{index:02d}-{_hex(rng, 6)}"
    mix = PRODUCT_MODEL_MIX["agent_platform"]
    workspace_id, api_key_id = rng.choice(keys)
    agents = tuple(
        (
            f"ag-{swarm_id[3:]}-{role}",
            role,
            rng.choices(tuple(mix), weights=tuple(mix.values()))[0],
        )
        for role in roles
    )
    return Swarm(swarm_id, workspace_id, api_key_id, agents)
