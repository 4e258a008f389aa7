"""Load profiles: YAML files validated into frozen dataclasses.

A profile is a list of stages. A closed-model stage holds a number of users (Locust's usual model);
an arrival-rate stage starts iterations at a target rate, served by a fixed pool of users. Everything
here depends on the elapsed time alone, so a profile's stage boundaries are testable without a runner.

This module must not import Locust: it is type-checked strictly and used by tests and tools that run
outside a Locust process. Every error names the file, the stage (1-based) and the key, and says what
was expected; the command line maps `ProfileError` to exit code 2.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from compliance_loadtest.errors import ProfileError, did_you_mean

if TYPE_CHECKING:
    from compliance_loadtest.capacity import CapacitySpec

__all__ = [
    "ArrivalStage",
    "ClassShare",
    "Profile",
    "Stage",
    "StageAt",
    "StopCondition",
    "available_profiles",
    "check_classes",
    "iter_slot_offsets",
    "load_profile",
    "parse_profile",
    "resolve_profile_path",
    "window_verdict",
]

Model = Literal["closed", "arrival", "capacity"]

PROFILE_KEYS = frozenset(
    {
        "description",
        "model",
        "stages",
        "mix",
        "stop_when",
        "workflow",
        "max_users",
        "max_start_delay",
        "search",
        "slos",
    }
)
CLOSED_STAGE_KEYS = frozenset({"duration", "users", "spawn_rate", "mix"})
ARRIVAL_STAGE_KEYS = frozenset({"duration", "rate", "rate_end", "max_users", "spawn_rate"})
STOP_KEYS = frozenset({"failure_ratio", "p95_ms", "window", "min_requests"})
SHARE_KEYS = frozenset({"weight", "fixed_count"})


@dataclass(frozen=True)
class ClassShare:
    """One user class of a stage's mix: a relative weight, or a fixed number of users."""

    name: str
    weight: int = 1
    fixed_count: int = 0


@dataclass(frozen=True)
class ArrivalStage:
    """Open-model part of a stage: iterations per second, ramping linearly from `rate` to `rate_end`."""

    rate: float
    rate_end: float

    def rate_at(self, t: float, duration: float) -> float:
        """Target iterations per second `t` seconds into a stage of `duration` seconds."""
        if duration <= 0:
            return self.rate
        frac = min(max(t / duration, 0.0), 1.0)
        return self.rate + (self.rate_end - self.rate) * frac

    def iterations_by(self, t: float, duration: float) -> float:
        """Iterations due in the first `t` seconds of the stage (the integral of the rate)."""
        t = min(max(t, 0.0), duration)
        slope = (self.rate_end - self.rate) / duration if duration > 0 else 0.0
        return self.rate * t + slope * t * t / 2

    def slot_offset(self, k: int, duration: float, share: float = 1.0, phase: float = 0.0) -> float | None:
        """Seconds into the stage at which iteration `k` (0-based) of a process with `share` of the
        rate is due, or None when the stage ends first. Solves share * iterations_by(t) = k + phase
        exactly, so a ramp's slots do not drift the way summing 1/rate steps would; `phase` (0 to 1)
        interleaves the slots of processes that share a rate."""
        target = k + phase
        b = self.rate * share
        a = (self.rate_end - self.rate) * share / (2 * duration) if duration > 0 else 0.0
        if target == 0:
            offset = 0.0 if (b > 0 or a > 0) else None
        else:
            disc = b * b + 4 * a * target
            if disc < 0:
                return None
            denominator = b + math.sqrt(disc)
            offset = 2 * target / denominator if denominator > 0 else None
        if offset is None or offset >= duration:
            return None
        return offset


@dataclass(frozen=True)
class Stage:
    """One stage: how long it lasts, how many users run, how fast they start, which classes."""

    number: int
    duration: float
    users: int
    spawn_rate: float
    mix: tuple[ClassShare, ...] = ()
    arrival: ArrivalStage | None = None

    def class_names(self) -> tuple[str, ...]:
        return tuple(share.name for share in self.mix)


@dataclass(frozen=True)
class StopCondition:
    """When a stress profile stops: over `window` seconds of recent requests, a failure ratio or a
    95th percentile above its limit (judged once at least `min_requests` were seen in the window)."""

    failure_ratio: float | None = None
    p95_ms: float | None = None
    window: float = 10.0
    min_requests: int = 20


@dataclass(frozen=True)
class StageAt:
    """Where a profile is at an elapsed time: the stage and the offsets into it."""

    stage: Stage
    start: float
    offset: float


@dataclass(frozen=True)
class Profile:
    """A validated load profile. Durations are seconds; `scaled()` compresses them."""

    name: str
    source: str
    description: str
    model: Model
    stages: tuple[Stage, ...]
    workflow: str | None = None
    max_start_delay: float = 1.0
    stop_when: StopCondition | None = None
    time_scale: float = 1.0
    capacity: CapacitySpec | None = None
    """A capacity profile's search and SLOs (see `compliance_loadtest.capacity`); its one stage holds
    the pool for the longest the search may take."""
    _ends: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        ends: list[float] = []
        total = 0.0
        for stage in self.stages:
            total += stage.duration
            ends.append(total)
        object.__setattr__(self, "_ends", tuple(ends))

    @property
    def duration(self) -> float:
        return self._ends[-1] if self._ends else 0.0

    @property
    def is_arrival(self) -> bool:
        """Open model: a pool of the workflow's users takes start slots (arrival and capacity)."""
        return self.model in ("arrival", "capacity")

    def stage_at(self, elapsed: float) -> StageAt | None:
        """The stage running `elapsed` seconds after the start; None once the profile is over.
        A boundary belongs to the stage it starts."""
        start = 0.0
        for stage, end in zip(self.stages, self._ends, strict=True):
            if elapsed < end:
                return StageAt(stage, start, max(elapsed - start, 0.0))
            start = end
        return None

    def tick(self, elapsed: float) -> tuple[int, float, tuple[str, ...]] | None:
        """What a Locust shape returns at `elapsed` seconds: users, spawn rate, class names (empty:
        the run's own classes). None ends the run."""
        at = self.stage_at(elapsed)
        if at is None:
            return None
        return at.stage.users, at.stage.spawn_rate, at.stage.class_names()

    def scaled(self, factor: float) -> Profile:
        """The same profile with every duration multiplied by `factor` and every spawn rate divided by
        it, so a compressed run keeps the profile's shape. Arrival rates stay: they are the load."""
        if not (factor > 0 and math.isfinite(factor)):
            raise ProfileError(self.source, f"time scale must be a positive number, got {factor!r}")
        stages = tuple(
            replace(s, duration=s.duration * factor, spawn_rate=s.spawn_rate / factor) for s in self.stages
        )
        stop = self.stop_when
        if stop is not None:
            stop = replace(stop, window=max(stop.window * factor, 2.0))
        capacity = self.capacity.scaled(factor) if self.capacity is not None else None
        return replace(
            self, stages=stages, stop_when=stop, time_scale=self.time_scale * factor, capacity=capacity
        )

    def class_names(self) -> frozenset[str]:
        """Every user class the profile names (mixes and the arrival workflow)."""
        names = {name for stage in self.stages for name in stage.class_names()}
        if self.workflow:
            names.add(self.workflow)
        return frozenset(names)


# --- locating profiles ---------------------------------------------------------------------------


def _shipped_dir() -> Path:
    try:
        return Path(str(resources.files("compliance_loadtest.shipped_profiles")))
    except ModuleNotFoundError:
        # A process started in a source checkout imports the package from there (the working folder
        # comes first on sys.path), where the shipped profiles are the folder beside it.
        return Path(__file__).resolve().parent.parent / "profiles"


def available_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(p.stem for p in _shipped_dir().glob("*.yaml"))


def resolve_profile_path(name_or_path: str) -> Path:
    """A shipped profile's file for a NAME, or the file itself for a PATH."""
    value = name_or_path.strip()
    if not value:
        raise ProfileError("--load-profile", "no profile given")
    looks_like_path = any(sep in value for sep in ("/", "\\")) or value.endswith((".yaml", ".yml"))
    candidate = Path(value).expanduser()
    if looks_like_path or candidate.is_file():
        if not candidate.is_file():
            raise ProfileError(value, "no such file")
        return candidate
    shipped = _shipped_dir() / f"{value}.yaml"
    if not shipped.is_file():
        names = available_profiles()
        raise ProfileError(
            value,
            f"unknown profile{did_you_mean(value, names)}; shipped profiles are {', '.join(names)}, "
            "or give a YAML path",
        )
    return shipped


def load_profile(name_or_path: str, known_classes: Collection[str] | None = None) -> Profile:
    """Read and validate a profile by NAME (shipped) or PATH. `known_classes`, when given, are the
    user class names a mix or workflow may name."""
    path = resolve_profile_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(str(path), f"cannot read: {exc}") from exc
    return parse_profile(text, source=str(path), name=path.stem, known_classes=known_classes)


# --- parsing -------------------------------------------------------------------------------------


class _Mapping(dict[str, Any]):
    """A YAML mapping that remembers the line it started on, for error messages."""

    line: int = 0


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    result = _Mapping()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"keys must be strings, got {key!r}", key_node.start_mark
            )
        if key in result:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line(obj: object) -> str:
    return f" (line {obj.line})" if isinstance(obj, _Mapping) and obj.line else ""


class _Reader:
    """Reads typed values out of one mapping, raising errors that say where."""

    def __init__(
        self, source: str, data: Mapping[str, Any], allowed: frozenset[str], stage: int | None
    ) -> None:
        self.source = source
        self.data = data
        self.stage = stage
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise self.error(
                unknown[0], f"unknown key{_line(data)}; allowed keys: {', '.join(sorted(allowed))}"
            )

    def error(self, key: str | None, message: str) -> ProfileError:
        return ProfileError(self.source, message, stage=self.stage, key=key)

    def number(
        self, key: str, *, default: float | None = None, positive: bool = False, required: bool = True
    ) -> float | None:
        if key not in self.data or self.data[key] is None:
            if default is not None or not required:
                return default
            raise self.error(key, f"missing{_line(self.data)}: a number is required")
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(key, f"must be a number, got {value!r}")
        if value < 0 or (positive and value == 0):
            raise self.error(key, f"must be {'above' if positive else 'at least'} 0, got {value!r}")
        return float(value)

    def required_number(self, key: str, *, positive: bool = False, default: float | None = None) -> float:
        value = self.number(key, positive=positive, default=default)
        assert value is not None
        return value

    def integer(self, key: str, *, default: int | None = None, positive: bool = False) -> int:
        if key not in self.data or self.data[key] is None:
            if default is not None:
                return default
            raise self.error(key, f"missing{_line(self.data)}: a whole number is required")
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be a whole number, got {value!r}")
        if value < 0 or (positive and value == 0):
            raise self.error(key, f"must be {'above' if positive else 'at least'} 0, got {value!r}")
        return value


def parse_profile(
    text: str,
    *,
    source: str = "<profile>",
    name: str = "profile",
    known_classes: Collection[str] | None = None,
) -> Profile:
    """Validate a profile's YAML text. Raises ProfileError naming `source`, the stage and the key."""
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except yaml.YAMLError as exc:
        raise ProfileError(source, f"not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ProfileError(source, "a profile is a mapping with a 'stages' list")
    top = _Reader(source, data, PROFILE_KEYS, None)

    model = data.get("model", "closed")
    if model not in ("closed", "arrival", "capacity"):
        raise top.error("model", f"must be 'closed', 'arrival' or 'capacity', got {model!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise top.error("description", f"must be text, got {description!r}")
    if model == "capacity":
        return _capacity_profile(source, name, data, top, description, known_classes)
    for key in ("search", "slos"):
        if key in data:
            raise top.error(key, "only capacity profiles (model: capacity) take this key")

    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise top.error("stages", "must be a non-empty list of stages")

    workflow: str | None = None
    max_users = 0
    if model == "arrival":
        for key in ("mix", "stop_when"):
            if key in data:
                raise top.error(key, "not allowed in an arrival-rate profile (its load is the rate)")
        workflow = data.get("workflow")
        if not isinstance(workflow, str) or not workflow:
            raise top.error("workflow", "an arrival-rate profile names the user class whose tasks it starts")
        max_users = top.integer("max_users", default=0)
        max_start_delay = top.required_number("max_start_delay", default=1.0)
    else:
        for key in ("workflow", "max_users", "max_start_delay"):
            if key in data:
                raise top.error(key, "only arrival-rate profiles (model: arrival) take this key")
        max_start_delay = 1.0

    default_mix = _mix(source, data.get("mix"), top, "mix") if "mix" in data else ()

    stages: list[Stage] = []
    for number, raw in enumerate(raw_stages, start=1):
        if not isinstance(raw, Mapping):
            raise ProfileError(source, f"a stage is a mapping, got {raw!r}", stage=number)
        if model == "arrival":
            stages.append(_arrival_stage(source, number, raw, max_users))
        else:
            stages.append(_closed_stage(source, number, raw, default_mix))

    stop = _stop_condition(source, data["stop_when"]) if "stop_when" in data else None
    profile = Profile(
        name=name,
        source=source,
        description=description.strip(),
        model=model,
        stages=tuple(stages),
        workflow=workflow,
        max_start_delay=max_start_delay,
        stop_when=stop,
    )
    if known_classes is not None:
        check_classes(profile, known_classes)
    return profile


def _capacity_profile(
    source: str,
    name: str,
    data: Mapping[str, Any],
    top: _Reader,
    description: str,
    known_classes: Collection[str] | None,
) -> Profile:
    """A capacity search: one stage that holds the pool for the longest the search may take; the load
    shape sets each step's rate as the search goes."""
    from compliance_loadtest.capacity import parse_capacity

    for key in ("mix", "stop_when", "stages"):
        if key in data:
            raise top.error(key, "not allowed in a capacity profile (the search sets the rate; see 'search')")
    workflow = data.get("workflow")
    if not isinstance(workflow, str) or not workflow:
        raise top.error("workflow", "a capacity profile names the user class whose iterations it starts")
    pool = top.integer("max_users", positive=True)
    spec = parse_capacity(data, source)
    stage = Stage(
        number=1,
        duration=spec.search.longest,
        users=pool,
        spawn_rate=float(pool),
        arrival=ArrivalStage(rate=0.0, rate_end=0.0),
    )
    profile = Profile(
        name=name,
        source=source,
        description=description.strip(),
        model="capacity",
        stages=(stage,),
        workflow=workflow,
        max_start_delay=top.required_number("max_start_delay", default=1.0),
        capacity=spec,
    )
    if known_classes is not None:
        check_classes(profile, known_classes)
    return profile


def _closed_stage(
    source: str, number: int, raw: Mapping[str, Any], default_mix: tuple[ClassShare, ...]
) -> Stage:
    r = _Reader(source, raw, CLOSED_STAGE_KEYS, number)
    mix = _mix(source, raw["mix"], r, "mix") if "mix" in raw else default_mix
    return Stage(
        number=number,
        duration=r.required_number("duration", positive=True),
        users=r.integer("users"),
        spawn_rate=r.required_number("spawn_rate", positive=True),
        mix=mix,
    )


def _arrival_stage(source: str, number: int, raw: Mapping[str, Any], profile_max_users: int) -> Stage:
    r = _Reader(source, raw, ARRIVAL_STAGE_KEYS, number)
    duration = r.required_number("duration", positive=True)
    rate = r.required_number("rate")
    rate_end = r.required_number("rate_end", default=rate)
    pool = r.integer("max_users", default=profile_max_users)
    if pool <= 0 and (rate > 0 or rate_end > 0):
        raise r.error(
            "max_users",
            "an arrival rate needs capacity: give max_users (the pool of users that run the iterations) "
            "above 0 for the profile or this stage",
        )
    spawn_rate = r.required_number("spawn_rate", positive=True, default=float(max(pool, 1)))
    return Stage(
        number=number,
        duration=duration,
        users=pool,
        spawn_rate=spawn_rate,
        arrival=ArrivalStage(rate=rate, rate_end=rate_end),
    )


def _mix(source: str, raw: object, where: _Reader, key: str) -> tuple[ClassShare, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise where.error(key, "a mix maps user class names to a weight or to {fixed_count: N}")
    shares: list[ClassShare] = []
    for name, value in raw.items():
        if isinstance(value, Mapping):
            r = _Reader(source, value, SHARE_KEYS, where.stage)
            if "weight" in value and "fixed_count" in value:
                raise where.error(f"{key}.{name}", "give a weight or a fixed_count, not both")
            fixed = r.integer("fixed_count", default=0)
            weight = r.integer("weight", default=1, positive=True)
            shares.append(ClassShare(name, weight=weight, fixed_count=fixed))
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            shares.append(ClassShare(name, weight=value))
        else:
            raise where.error(
                f"{key}.{name}", f"must be a positive whole weight or {{fixed_count: N}}, got {value!r}"
            )
    return tuple(shares)


def _stop_condition(source: str, raw: object) -> StopCondition:
    if not isinstance(raw, Mapping):
        raise ProfileError(source, "must be a mapping of limits", key="stop_when")
    r = _Reader(source, raw, STOP_KEYS, None)
    ratio = r.number("failure_ratio", required=False)
    if ratio is not None and ratio > 1:
        raise r.error("failure_ratio", f"is a ratio between 0 and 1, got {ratio}")
    p95 = r.number("p95_ms", positive=True, required=False)
    if ratio is None and p95 is None:
        raise r.error("stop_when", "give failure_ratio, p95_ms or both")
    return StopCondition(
        failure_ratio=ratio,
        p95_ms=p95,
        window=r.required_number("window", positive=True, default=10.0),
        min_requests=r.integer("min_requests", default=20),
    )


def check_classes(profile: Profile, known_classes: Collection[str]) -> None:
    """Raise ProfileError when the profile names a user class the run does not have."""
    known = set(known_classes)
    choices = ", ".join(sorted(known)) or "none"
    if profile.workflow is not None and profile.workflow not in known:
        raise ProfileError(
            profile.source, f"unknown user class {profile.workflow!r}; known: {choices}", key="workflow"
        )
    for stage in profile.stages:
        for share in stage.mix:
            if share.name not in known:
                raise ProfileError(
                    profile.source,
                    f"unknown user class {share.name!r}; known: {choices}",
                    stage=stage.number,
                    key=f"mix.{share.name}",
                )


def iter_slot_offsets(
    arrival: ArrivalStage, duration: float, share: float = 1.0, phase: float = 0.0
) -> Iterator[float]:
    """Every slot offset of one stage for one process, in order (for tests and reports)."""
    k = 0
    while (offset := arrival.slot_offset(k, duration, share, phase)) is not None:
        yield offset
        k += 1


# --- stop conditions ----------------------------------------------------------------------------

StatsSnapshot = tuple[float, int, int, dict[int, int]]
"""(monotonic time, requests, failures, response-time histogram {ms: count}) of all requests."""


def window_verdict(
    old: tuple[float, int, int, dict[int, int]],
    new: tuple[float, int, int, dict[int, int]],
    stop: StopCondition,
) -> str | None:
    """Why the requests between two stats snapshots break `stop`, or None. Snapshots are
    (time, requests, failures, response-time histogram {ms: count})."""
    requests = new[1] - old[1]
    failures = new[2] - old[2]
    if requests < max(stop.min_requests, 1):
        return None
    if stop.failure_ratio is not None and failures / requests > stop.failure_ratio:
        ratio = failures / requests
        return f"failure ratio {ratio:.3f} > {stop.failure_ratio:g} ({failures} of {requests} requests)"
    if stop.p95_ms is not None:
        histogram = {ms: count - old[3].get(ms, 0) for ms, count in new[3].items()}
        p95 = _percentile(histogram, 0.95)
        if p95 is not None and p95 > stop.p95_ms:
            return f"p95 {p95:.0f} ms > {stop.p95_ms:g} ms over the last {new[0] - old[0]:.0f}s"
    return None


def _percentile(histogram: dict[int, int], q: float) -> float | None:
    total = sum(c for c in histogram.values() if c > 0)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for ms in sorted(histogram):
        seen += max(histogram[ms], 0)
        if seen >= rank:
            return float(ms)
    return float(max(histogram))
