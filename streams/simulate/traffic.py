"""Request generation: who calls, when, how big, on which model, region and chip.

:class:`Traffic` turns a :class:`~streams.simulate.world.World` into a stream of valid
:class:`~streams.events.TokenUsageEvent` records, one per request, for given event times.
Event times come from :class:`HistoryClock` (spread over the last D days following the daily
curve) or :class:`LiveClock` (stamped now).

* The **daily curve**: human traffic follows office hours (China time, where most tenants
  are); agents run around the clock. At night almost every request is an agent's.
* **Request sizes**: a human query is ~1.5k tokens; an agent request carries whole
  documents, tool results and the swarm's shared context and averages ~50 times that
  (the 40-60x of the domain brief). Agent contexts reach every price tier (0-128k, 128k-256k,
  256k-1M input tokens); sizes are drawn well inside each tier, never above 1,000,000.
* **Cache hits** (more frequent for agents, who resend the swarm's context), **thinking**
  tokens (a share of output, by model), **batch** calls (agents and direct API clients).
* ``accelerator_ms`` derives from the tokens and the chip's throughput (prefill for fresh
  input, a tenth of that for cached input, decode for output) times the model's weight.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from math import exp
from statistics import NormalDist

from streams.events import Channel, TokenUsageEvent
from streams.simulate.world import (
    CHIPS,
    MODEL_SPECS,
    PRODUCT_MODEL_MIX,
    REGION_CHIP_MIX,
    Swarm,
    Tenant,
    World,
)

#: Relative human traffic per hour of the day (China time, UTC+8); mean 1.
_HUMAN_HOURLY = (0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.60, 1.10, 1.60, 1.80, 1.70,
                 1.30, 1.50, 1.75, 1.80, 1.70, 1.50, 1.20, 1.10, 1.20, 1.10, 0.80, 0.50)  # fmt: skip
HUMAN_DAILY_CURVE: tuple[float, ...] = tuple(
    value * 24 / sum(_HUMAN_HOURLY) for value in _HUMAN_HOURLY
)
CURVE_UTC_OFFSET_HOURS = 8

#: Input tokens are drawn inside these bounds per tier, clear of the tier edges (128k and
#: 256k read as 128,000/131,072 and 256,000/262,144 alike), never above 1,000,000.
TIER_INPUT_BOUNDS = ((1_000, 120_000), (135_000, 250_000), (270_000, 1_000_000))
#: Share of agent requests whose context lands in the 128k-256k and 256k-1M tiers.
AGENT_TIER2_SHARE = 0.08
AGENT_TIER3_SHARE = 0.025


#: Standard normal quantiles at (i + 0.5) / N: a table lookup is 5x faster than gauss() and
#: fine-grained enough for token counts.
_NORMAL_QUANTILES = tuple(NormalDist().inv_cdf((i + 0.5) / 8192) for i in range(8192))


def human_hour_weight(ts: float) -> float:
    """Relative human traffic at POSIX time ``ts`` (the daily curve)."""
    hour = int((ts / 3600.0 + CURVE_UTC_OFFSET_HOURS) % 24)
    return HUMAN_DAILY_CURVE[hour]


class LiveClock:
    """Event times for live traffic: now (or a fixed ``now``), minus serving latency."""

    def __init__(self, now: datetime | None = None) -> None:
        self._fixed = now.timestamp() if now is not None else None

    def time_for(self, _sent: int) -> float:
        return self._fixed if self._fixed is not None else time.time()


class HistoryClock:
    """Event times spread over ``[now - days, now]`` following the daily curve.

    Message ``i`` of ``total`` gets the ``(i + jitter) / total`` quantile of the traffic
    intensity (agents flat, humans on the curve), so the stream is in event-time order
    (except where faults reorder it) and denser in office hours.
    """

    def __init__(
        self,
        *,
        days: float,
        total: int,
        agent_share: float,
        rng: random.Random,
        now: datetime | None = None,
    ) -> None:
        end = (now or datetime.now(UTC)).timestamp()
        start = end - days * 86_400
        self._total = max(total, 1)
        self._rng = rng
        edges = [start]
        next_hour = math.floor(start / 3600) * 3600 + 3600
        while next_hour < end:
            edges.append(float(next_hour))
            next_hour += 3600
        edges.append(end)
        self._edges = edges
        intensity = [agent_share + (1 - agent_share) * human_hour_weight(lo) for lo in edges[:-1]]
        self._intensity = intensity
        self._cum = [0.0]
        for lo, hi, rate in zip(edges[:-1], edges[1:], intensity, strict=True):
            self._cum.append(self._cum[-1] + (hi - lo) * rate)

    def time_for(self, sent: int) -> float:
        quantile = min((sent + self._rng.random()) / self._total, 1.0)
        target = quantile * self._cum[-1]
        index = min(bisect.bisect_right(self._cum, target) - 1, len(self._intensity) - 1)
        return self._edges[index] + (target - self._cum[index]) / self._intensity[index]


@dataclass
class _Source:
    """One traffic source: a tenant's product and channel, for humans or agents."""

    tenant: Tenant
    product: str
    channel: Channel
    batch_share: float
    models: tuple[str, ...]
    model_cum: tuple[float, ...]
    swarms: bool


@dataclass
class _Task:
    """A swarm task in progress: which member speaks next."""

    task_id: str
    swarm: Swarm
    region: str
    schedule: list[int]
    sessions: list[str]
    position: int = 0


class Traffic:
    """Generate valid token usage events for a world; deterministic for its ``rng``."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.rng = rng
        human: list[tuple[_Source, float]] = []
        agent: list[tuple[_Source, float]] = []
        for tenant in world.tenants:
            total = sum(weight for _, weight in tenant.profiles)
            for profile, weight in tenant.profiles:
                mix = PRODUCT_MODEL_MIX[profile.product]
                share = tenant.weight * weight / total
                for is_agent, actor_share, batch in (
                    (False, 1 - profile.agent_share, profile.human_batch_share),
                    (True, profile.agent_share, profile.agent_batch_share),
                ):
                    if actor_share <= 0:
                        continue
                    source = _Source(
                        tenant=tenant,
                        product=profile.product,
                        channel=profile.channel,
                        batch_share=batch,
                        models=tuple(mix),
                        model_cum=tuple(_cumsum(mix.values())),
                        swarms=is_agent and profile.swarms and bool(tenant.swarms),
                    )
                    (agent if is_agent else human).append((source, share * actor_share))
        self._human = [s for s, _ in human]
        self._human_cum = _cumsum(w for _, w in human)
        self._agent = [s for s, _ in agent]
        self._agent_cum = _cumsum(w for _, w in agent)
        human_total = self._human_cum[-1] if human else 0.0
        agent_total = self._agent_cum[-1] if agent else 0.0
        #: Share of requests made by agents, averaged over a day.
        self.agent_share = agent_total / ((human_total + agent_total) or 1.0)
        self._hour = -1
        self._hour_agent_probability = self.agent_share
        self._sessions: dict[str, list[str | int]] = {}
        self._actor_keys: dict[str, tuple[str, str]] = {}
        self._tasks: dict[str, list[_Task]] = {}
        self._region_chips = {
            region: (tuple(mix), tuple(_cumsum(mix.values())))
            for region, mix in REGION_CHIP_MIX.items()
        }

    # --- choosing who calls ---------------------------------------------------------------
    def agent_probability(self, ts: float) -> float:
        """Chance that a request at ``ts`` is an agent's (agents flat, humans on the curve)."""
        hour = int(ts // 3600)
        if hour != self._hour:
            human = (1 - self.agent_share) * human_hour_weight(ts)
            self._hour = hour
            self._hour_agent_probability = self.agent_share / ((self.agent_share + human) or 1.0)
        return self._hour_agent_probability

    def _lognormal(self, mu: float, sigma: float) -> float:
        return exp(mu + sigma * _NORMAL_QUANTILES[int(self.rng.random() * 8192)])

    def event(self, ts: float) -> TokenUsageEvent:
        """One valid event for a request that finished at POSIX time ``ts``."""
        # The hot path of the simulator (>100k calls/s): locals and inline draws on purpose.
        rng = self.rng
        random_ = rng.random
        use_agent = bool(self._agent) and (
            not self._human or random_() < self.agent_probability(ts)
        )
        if use_agent:
            source = self._agent[bisect.bisect(self._agent_cum, random_() * self._agent_cum[-1])]
        else:
            source = self._human[bisect.bisect(self._human_cum, random_() * self._human_cum[-1])]
        tenant = source.tenant
        swarm_id = task_id = None
        if source.swarms:
            task = self._next_task(tenant)
            member = task.schedule[task.position]
            task.position += 1
            if task.position == len(task.schedule):
                self._tasks[tenant.tenant_id].remove(task)
            actor_id, _role, model = task.swarm.agents[member]
            workspace_id, api_key_id = task.swarm.workspace_id, task.swarm.api_key_id
            session_id = task.sessions[member]
            region = task.region
            swarm_id, task_id = task.swarm.swarm_id, task.task_id
        else:
            if use_agent:
                actor_id = f"ag-{tenant.tenant_id[3:7]}-{int(random_() * tenant.agent_count):04d}"
            else:
                actor_id = f"u-{tenant.tenant_id[3:7]}-{int(random_() * tenant.human_count):05d}"
            workspace_id, api_key_id = self._key_of(actor_id, tenant)
            session_id = self._session_of(actor_id, 20 if use_agent else 6)
            model = source.models[bisect.bisect(source.model_cum, random_() * source.model_cum[-1])]
            region = self._region(tenant)

        if use_agent:
            input_tokens, output_tokens = self._agent_tokens()
            cache_hit = random_() < 0.6
        else:
            input_tokens, output_tokens = self._human_tokens()
            cache_hit = random_() < 0.3
        cached = int(input_tokens * (0.2 + 0.7 * random_())) if cache_hit else 0
        model_spec = MODEL_SPECS[model]
        thinking = (
            int(output_tokens * (0.4 + 0.45 * random_()))
            if random_() < model_spec.thinking_share
            else 0
        )
        batch = source.batch_share > 0 and random_() < source.batch_share
        chips, chip_cum = self._region_chips[region]
        chip_family = chips[bisect.bisect(chip_cum, random_() * chip_cum[-1])]
        chip = CHIPS[chip_family]
        seconds = (
            (input_tokens - cached + cached * chip.cached_prefill_cost) / chip.prefill_tokens_per_s
            + output_tokens / chip.decode_tokens_per_s
        ) * model_spec.compute_factor
        # Batch work is packed densely on the chips; real-time carries scheduling slack.
        accelerator_ms = (
            int(seconds * (0.72 + 0.16 * random_() if batch else 0.9 + 0.2 * random_()) * 1000) + 1
        )
        # The event is stamped when the request finished: a little before `ts` (a batch
        # call, up to an hour before).
        latency = (60.0 + 3540.0 * random_()) if batch else (0.05 + 0.2 * seconds) * random_()
        return TokenUsageEvent(
            event_id=f"evt-{rng.getrandbits(96):024x}",
            schema_version=1,
            occurred_at=datetime.fromtimestamp(ts - latency, UTC),
            tenant_id=tenant.tenant_id,
            workspace_id=workspace_id,
            api_key_id=api_key_id,
            product=source.product,
            channel=source.channel,
            actor_type="agent" if use_agent else "human",
            actor_id=actor_id,
            session_id=session_id,
            request_id=f"req-{rng.getrandbits(80):020x}",
            model=model,
            region=region,
            chip_family=chip_family,
            mode="batch" if batch else "realtime",
            input_tokens=input_tokens,
            cached_input_tokens=cached,
            output_tokens=output_tokens,
            thinking_tokens=thinking,
            accelerator_ms=accelerator_ms,
            swarm_id=swarm_id,
            task_id=task_id,
        )

    # --- sizes ------------------------------------------------------------------------------
    def _human_tokens(self) -> tuple[int, int]:
        """A manual query: ~1.2k input, ~0.3k output on average."""
        lognormal = self._lognormal
        input_tokens = min(max(int(lognormal(6.8, 0.7)), 20), 60_000)  # median ~900
        output_tokens = min(max(int(lognormal(5.5, 0.6)), 1), 8_000)  # median ~245
        return input_tokens, output_tokens

    def _agent_tokens(self) -> tuple[int, int]:
        """An agent step: documents, tool output and shared context; ~50x a human query."""
        rng = self.rng
        tier = rng.random()
        if tier < AGENT_TIER3_SHARE:
            low, high = TIER_INPUT_BOUNDS[2]
            input_tokens = low + int(rng.random() * (high - low + 1))
        elif tier < AGENT_TIER3_SHARE + AGENT_TIER2_SHARE:
            low, high = TIER_INPUT_BOUNDS[1]
            input_tokens = low + int(rng.random() * (high - low + 1))
        else:
            low, high = TIER_INPUT_BOUNDS[0]
            input_tokens = max(int(self._lognormal(10.5, 0.6)), low)  # median ~36k
            if input_tokens > high:  # the tail beyond the tier folds back into its top third
                input_tokens = high - int(rng.random() * high / 3)
        output_tokens = min(max(int(self._lognormal(7.6, 0.7)), 10), 32_000)  # median ~2k
        return input_tokens, output_tokens

    # --- state: sessions, keys, regions, swarm tasks ----------------------------------------
    def _session_of(self, actor_id: str, mean_requests: int) -> str:
        state = self._sessions.get(actor_id)
        if state is None or state[1] == 0:
            state = [
                f"ses-{self.rng.getrandbits(64):016x}",
                1 + self.rng.randrange(2 * mean_requests),
            ]
            self._sessions[actor_id] = state
        state[1] = int(state[1]) - 1
        return str(state[0])

    def _key_of(self, actor_id: str, tenant: Tenant) -> tuple[str, str]:
        key = self._actor_keys.get(actor_id)
        if key is None:
            cum = tenant.key_cum_weights
            key = tenant.keys[bisect.bisect(cum, self.rng.random() * cum[-1])]
            self._actor_keys[actor_id] = key
        return key

    def _region(self, tenant: Tenant) -> str:
        if len(tenant.regions) == 1:
            return tenant.home_region
        cum = tenant.region_cum_weights
        return tenant.regions[bisect.bisect(cum, self.rng.random() * cum[-1])]

    def _next_task(self, tenant: Tenant) -> _Task:
        """Continue a running task of the tenant's swarms, or start one."""
        rng = self.rng
        active = self._tasks.setdefault(tenant.tenant_id, [])
        if active and (len(active) >= tenant.max_active_tasks or rng.random() < 0.9):
            return active[rng.randrange(len(active))]
        swarm = tenant.swarms[rng.randrange(len(tenant.swarms))]
        size = len(swarm.agents)
        # Every member works at least once, the planner (first member) first; then the
        # swarm iterates: 1-5 more steps per member in a shuffled order.
        rest = [member for member in range(size) for _ in range(rng.randint(1, 5))]
        rng.shuffle(rest)
        first_round = [0, *rng.sample(range(1, size), size - 1)]
        task = _Task(
            task_id=f"task-{rng.getrandbits(64):016x}",
            swarm=swarm,
            region=self._region(tenant),
            schedule=first_round + rest,
            sessions=[f"ses-{rng.getrandbits(64):016x}" for _ in range(size)],
        )
        active.append(task)
        return task


def _cumsum(values: Iterable[float]) -> list[float]:
    return list(accumulate(values))
