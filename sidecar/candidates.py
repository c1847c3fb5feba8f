"""Which of a capability's models may serve a request at all, and at what worst-case cost.

One pass over the capability's candidates, each tested against the filters in
the order operators read them: unavailable (`model:unavailable`); data
sensitivity against locality and compliance tags
(`sensitivity:confidential->local-only`); required compliance tags
(`compliance:required-tags`); context window for input plus output
(`context-window:too-small`); blocked paths (`blocked:NAME`). A model is reported
under the first filter it fails; each filter that removed any model fires once,
naming them and why. Nothing left is `DENY` naming those rules. Survivors get
their output cap and worst-case cost, in configured order.

One pass rather than a step per filter because this is the hot path: no closure
or list per filter, no cost computed for a model already out.
Pure: must not import gRPC or the wire types (`faregate.v1`), nor read a clock.
"""

from __future__ import annotations

from faregate.model import Sensitivity
from sidecar.compiled import BlockRule, ModelEntry
from sidecar.context import RouteContext, deny_nothing_left
from sidecar.decision import Candidate, Decision

UNAVAILABLE = 0
SENSITIVITY = 1
COMPLIANCE = 2
CONTEXT_WINDOW = 3
BLOCKED = 4  # BLOCKED + i for the i-th blocked rule that applies


def _why(
    entry: ModelEntry, failed: int, ctx: RouteContext, output: int, blocked: list[BlockRule]
) -> str:
    """Why `entry` failed a request-dependent filter (the others are precompiled)."""
    model = entry.model
    if failed == COMPLIANCE:
        missing = [t for t in ctx.request.required_compliance_tags if t not in entry.tags]
        return "missing " + ", ".join(repr(tag) for tag in missing)
    if failed == CONTEXT_WINDOW:
        return f"window {model.context_window} < {ctx.request.input_tokens} in + {output} out"
    rule = blocked[failed - BLOCKED].rule
    target = ", ".join(
        f"{key} {value}"
        for key, value in (("model", rule.model), ("tier", rule.tier), ("provider", rule.provider))
        if value
    )
    return f"blocked ({target or 'every model'})"


def _rule_name(failed: int, blocked: list[BlockRule]) -> str:
    if failed == COMPLIANCE:
        return "compliance:required-tags"
    if failed == CONTEXT_WINDOW:
        return "context-window:too-small"
    return f"blocked:{blocked[failed - BLOCKED].rule.name}"


def filter_candidates(ctx: RouteContext) -> Decision | None:
    request = ctx.request
    compiled = ctx.compiled
    blocked: list[BlockRule] = []
    if compiled.blocked:
        capability, tenant, team = request.capability, request.tenant, request.team
        priority = request.priority.value
        blocked = [
            b for b in compiled.blocked if b.rule.match.matches(capability, tenant, team, priority)
        ]
    sensitivity: Sensitivity = request.sensitivity
    required = request.required_compliance_tags
    input_tokens = request.input_tokens
    max_output = ctx.max_output_tokens
    kept = ctx.candidates
    removed: list[tuple[int, ModelEntry, int]] | None = None
    for entry in compiled.entries:
        model = entry.model
        limit = model.max_output_tokens
        output = max_output if max_output < limit else limit
        if model.unavailable:
            failed = UNAVAILABLE
        elif sensitivity not in entry.allowed_sensitivities:
            failed = SENSITIVITY
        elif required and not entry.tags.issuperset(required):
            failed = COMPLIANCE
        elif input_tokens + output > model.context_window:
            failed = CONTEXT_WINDOW
        else:
            failed = -1
            for index, rule in enumerate(blocked):
                if model.name in rule.models:
                    failed = BLOCKED + index
                    break
            if failed < 0:
                cost = entry.worst_case_cost_nanos(input_tokens, output)
                kept.append(Candidate(model, output, cost))
                continue
        if removed is None:
            removed = []
        removed.append((failed, entry, output))
    if removed is not None:
        for failed in sorted({f for f, _, _ in removed}):
            if failed == UNAVAILABLE:
                ctx.fire("model:unavailable", compiled.unavailable_detail)
                continue
            if failed == SENSITIVITY:
                ctx.fire(*compiled.sensitivity_details[sensitivity])
                continue
            detail = ", ".join(
                f"{entry.model.name} ({_why(entry, failed, ctx, output, blocked)})"
                for f, entry, output in removed
                if f == failed
            )
            ctx.fire(_rule_name(failed, blocked), f"removed {detail}")
    if not kept:
        return deny_nothing_left(ctx)
    return None
