"""The instance state machine DSL: each driver declares how its cloud's instances move.

A machine is written as text, one transition per line, as short as Deltacloud's Ruby DSL::

    instance_states = StateMachine('''
        start    -> pending   on create
        pending  -> running   automatically
        running  -> running   on reboot
        running  -> stopping  on stop
        stopping -> stopped   automatically
        stopped  -> running   on start
        stopped  -> finish    on destroy
    ''')

It is validated when built (so a driver class with a bad machine fails at import), and
answers the questions the server asks: which actions are allowed in a state, and where an
action leads.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import DriverDefinitionError


class InstanceState(enum.StrEnum):
    """The instance states every driver maps its cloud's states onto."""

    START = "start"  # before creation
    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISH = "finish"  # after destruction
    ERROR = "error"


class InstanceAction(enum.StrEnum):
    """The actions a client may ask for."""

    CREATE = "create"
    START = "start"
    STOP = "stop"
    REBOOT = "reboot"
    DESTROY = "destroy"


@dataclass(frozen=True)
class Transition:
    """One edge: ``source`` goes to ``target`` on ``action``, or by itself when
    ``action`` is None (an automatic transition the cloud makes)."""

    source: InstanceState
    target: InstanceState
    action: InstanceAction | None = None

    @property
    def automatic(self) -> bool:
        return self.action is None


class StateMachine:
    """A validated, immutable instance state machine."""

    def __init__(self, spec: str | Iterable[Transition]) -> None:
        transitions = _parse(spec) if isinstance(spec, str) else list(spec)
        _validate(transitions)
        self.transitions: tuple[Transition, ...] = tuple(transitions)
        self._by_action = {(t.source, t.action): t for t in transitions if t.action}
        # Looked up for every instance the server converts or observes: computed once.
        self._from: dict[InstanceState, tuple[Transition, ...]] = {}
        for t in transitions:
            self._from[t.source] = (*self._from.get(t.source, ()), t)
        self._actions = {
            state: tuple(t.action for t in out if t.action is not None)
            for state, out in self._from.items()
        }
        self._automatic = {
            state: tuple(t.target for t in out if t.automatic) for state, out in self._from.items()
        }
        #: The actions some state allows (their values: "start", "stop", ...).
        self.actions: frozenset[str] = frozenset(
            t.action.value for t in transitions if t.action is not None
        )

    @property
    def states(self) -> list[InstanceState]:
        """Every state the machine mentions, in declaration order, START first."""
        seen: dict[InstanceState, None] = {InstanceState.START: None}
        for t in self.transitions:
            seen.setdefault(t.source)
            seen.setdefault(t.target)
        return list(seen)

    def transitions_from(self, state: InstanceState) -> list[Transition]:
        return list(self._from.get(state, ()))

    def allowed_actions(self, state: InstanceState) -> list[InstanceAction]:
        """The actions a client may ask for in ``state`` (non-automatic transitions)."""
        return list(self._actions.get(state, ()))

    def allows(self, state: InstanceState, action: InstanceAction) -> bool:
        return (state, action) in self._by_action

    def target(self, state: InstanceState, action: InstanceAction) -> InstanceState | None:
        """Where ``action`` leads from ``state``, or None when it is not allowed."""
        transition = self._by_action.get((state, action))
        return transition.target if transition else None

    def automatic_targets(self, state: InstanceState) -> list[InstanceState]:
        return list(self._automatic.get(state, ()))

    def is_transitional(self, state: InstanceState) -> bool:
        """True when the cloud will move the instance on its own from ``state``."""
        return bool(self._automatic.get(state))

    def __repr__(self) -> str:
        return f"StateMachine({len(self.transitions)} transitions)"


def _parse(text: str) -> list[Transition]:
    transitions = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        try:
            if len(words) == 4 and words[1] == "->" and words[3] == "automatically":
                transitions.append(Transition(InstanceState(words[0]), InstanceState(words[2])))
            elif len(words) == 5 and words[1] == "->" and words[3] == "on":
                transitions.append(
                    Transition(
                        InstanceState(words[0]),
                        InstanceState(words[2]),
                        InstanceAction(words[4]),
                    )
                )
            else:
                raise ValueError(
                    "expected 'STATE -> STATE on ACTION' or 'STATE -> STATE automatically'"
                )
        except ValueError as exc:
            raise DriverDefinitionError(
                f"state machine line {number} {line!r}: {exc}. States: "
                f"{', '.join(s.value for s in InstanceState)}; actions: "
                f"{', '.join(a.value for a in InstanceAction)}"
            ) from None
    return transitions


def _validate(transitions: list[Transition]) -> None:
    if not transitions:
        raise DriverDefinitionError("a state machine needs at least one transition")
    for t in transitions:
        if not isinstance(t.source, InstanceState) or not isinstance(t.target, InstanceState):
            raise DriverDefinitionError(f"{t}: states must be InstanceState members")
        if t.action is not None and not isinstance(t.action, InstanceAction):
            raise DriverDefinitionError(f"{t}: actions must be InstanceAction members")
        if t.target == InstanceState.START:
            raise DriverDefinitionError(f"{t}: nothing may lead back to 'start'")
        if t.source == InstanceState.FINISH:
            raise DriverDefinitionError(f"{t}: 'finish' is final, nothing leaves it")
        if (t.action == InstanceAction.CREATE) != (t.source == InstanceState.START):
            raise DriverDefinitionError(
                f"{t}: 'create' is the action out of 'start', and the only one"
            )
    seen: set[tuple[InstanceState, InstanceAction]] = set()
    for t in transitions:
        if t.action is None:
            continue
        key = (t.source, t.action)
        if key in seen:
            raise DriverDefinitionError(
                f"action {t.action.value!r} is declared twice out of {t.source.value!r}"
            )
        seen.add(key)
    if (InstanceState.START, InstanceAction.CREATE) not in seen:
        raise DriverDefinitionError("the machine needs 'start -> <state> on create'")
    reachable = {InstanceState.START}
    frontier = [InstanceState.START]
    while frontier:
        state = frontier.pop()
        for t in transitions:
            if t.source == state and t.target not in reachable:
                reachable.add(t.target)
                frontier.append(t.target)
    unreachable = {t.source for t in transitions} - reachable
    if unreachable:
        names = ", ".join(sorted(s.value for s in unreachable))
        raise DriverDefinitionError(f"states not reachable from 'start': {names}")
