"""Pure access-policy engine (spec core.md §7): model, glob grammar, parser, compiled index, evaluation.

Imports nothing from the project except ``core``. Typical use::

    index = compile_index(policies, bindings, now)            # once per tenant policy version
    decision = check(index, identity_ids, path, "read", EvalContext(source_ip=ip, now=now))
    decision.raise_for_denied()
"""

from policy.evaluate import (
    Decision,
    EvalContext,
    ListPlan,
    check,
    failed_condition,
    listable,
    may_list_under,
    plan_list,
)
from policy.glob import Glob, compile_glob
from policy.index import PolicyIndex, PolicyView, compile_index
from policy.model import (
    DEFAULT_MFA_MAX_AGE_SECONDS,
    Binding,
    Conditions,
    Permission,
    Policy,
    Rule,
    TimeWindow,
)
from policy.parser import parse_conditions, parse_permissions, parse_policy, parse_rule, parse_rules

__all__ = [
    "DEFAULT_MFA_MAX_AGE_SECONDS",
    "Binding",
    "Conditions",
    "Decision",
    "EvalContext",
    "Glob",
    "ListPlan",
    "Permission",
    "Policy",
    "PolicyIndex",
    "PolicyView",
    "Rule",
    "TimeWindow",
    "check",
    "compile_glob",
    "compile_index",
    "failed_condition",
    "listable",
    "may_list_under",
    "parse_conditions",
    "parse_permissions",
    "parse_policy",
    "parse_rule",
    "parse_rules",
    "plan_list",
]
