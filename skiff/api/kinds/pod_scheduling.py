"""A pod's scheduling fields checked as Kubernetes' ValidatePodSpec checks them:
affinity (node: terms, operators, values, matchFields; pod: topologyKey,
labelSelector, namespaces, weights), topologySpreadConstraints (maxSkew,
topologyKey, whenUnsatisfiable, minDomains, policies, duplicates),
preemptionPolicy. Pure; every problem a FieldError with its path. Terms that
are valid but can never match (In and NotIn of one value) are not refused:
the scheduler reports them as Kubernetes does ("didn't match Pod's node
affinity/selector")."""
from __future__ import annotations

from proto.skiff.v1 import types_pb2
from skiff.api import labelselector
from skiff.api.validation import FieldError, dns1123_label_error, dns1123_subdomain_error, invalid_value, \
    qualified_name_error

NODE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
WHEN_UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")
POLICIES = ("Honor", "Ignore")
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")


def _supported(value: str, allowed: tuple[str, ...]) -> str:
    return f'Unsupported value: "{value}": supported values: ' + ", ".join(f'"{a}"' for a in allowed)


def _key(key: str, path: str) -> list[FieldError]:
    if not key:
        return [FieldError(path, "Required value")]
    problem = qualified_name_error(key)
    return [FieldError(path, invalid_value(key, problem))] if problem else []


def node_requirement_errors(req: types_pb2.NodeSelectorRequirement, path: str, *, field: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    op, values = req.operator, list(req.values)
    if field:
        if req.key != "metadata.name":
            errors.append(FieldError(f"{path}.key", invalid_value(req.key, "not a valid field selector key")))
        if op not in ("In", "NotIn"):
            errors.append(FieldError(f"{path}.operator", invalid_value(op, "not a valid selector operator")))
        elif len(values) != 1:
            errors.append(FieldError(f"{path}.values", "Required value: must be only one value when `operator` is "
                                                       "'In' or 'NotIn' for node field selector"))
        return errors
    errors += _key(req.key, f"{path}.key")
    if op in ("In", "NotIn"):
        if not values:
            errors.append(FieldError(f"{path}.values", "Required value: must be specified when `operator` is "
                                                       "'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errors.append(FieldError(f"{path}.values", "Forbidden: may not be specified when `operator` is "
                                                       "'Exists' or 'DoesNotExist'"))
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            errors.append(FieldError(f"{path}.values", "Required value: must be specified single value when "
                                                       "`operator` is 'Lt' or 'Gt'"))
        elif not values[0].lstrip("-").isdigit():
            errors.append(FieldError(f"{path}.values[0]", invalid_value(values[0], "must be an integer")))
    else:
        errors.append(FieldError(f"{path}.operator", invalid_value(op, "not a valid selector operator")))
    return errors


def node_term_errors(term: types_pb2.NodeSelectorTerm, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, req in enumerate(term.match_expressions):
        errors += node_requirement_errors(req, f"{path}.matchExpressions[{i}]", field=False)
    for i, req in enumerate(term.match_fields):
        errors += node_requirement_errors(req, f"{path}.matchFields[{i}]", field=True)
    return errors


def _weight(weight: int, path: str) -> list[FieldError]:
    if 1 <= weight <= 100:
        return []
    return [FieldError(path, f"Invalid value: {weight}: must be in the range 1-100")]


def pod_term_errors(term: types_pb2.PodAffinityTerm, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not term.topology_key:
        errors.append(FieldError(f"{path}.topologyKey", "Required value: can not be empty"))
    else:
        errors += _key(term.topology_key, f"{path}.topologyKey")
    if term.HasField("label_selector"):
        errors += labelselector.validate(term.label_selector, f"{path}.labelSelector")
    if term.HasField("namespace_selector"):
        errors += labelselector.validate(term.namespace_selector, f"{path}.namespaceSelector")
    for i, ns in enumerate(term.namespaces):
        if problem := dns1123_label_error(ns):
            errors.append(FieldError(f"{path}.namespaces[{i}]", invalid_value(ns, problem)))
    for name, keys in (("matchLabelKeys", term.match_label_keys), ("mismatchLabelKeys", term.mismatch_label_keys)):
        for i, key in enumerate(keys):
            errors += _key(key, f"{path}.{name}[{i}]")
    return errors


def affinity_errors(affinity: types_pb2.Affinity, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if affinity.HasField("node_affinity"):
        na, where = affinity.node_affinity, f"{path}.nodeAffinity"
        if na.HasField("required_during_scheduling_ignored_during_execution"):
            req = f"{where}.requiredDuringSchedulingIgnoredDuringExecution"
            terms = na.required_during_scheduling_ignored_during_execution.node_selector_terms
            if not terms:
                errors.append(FieldError(f"{req}.nodeSelectorTerms",
                                         "Required value: must have at least one node selector term"))
            for i, term in enumerate(terms):
                errors += node_term_errors(term, f"{req}.nodeSelectorTerms[{i}]")
        for i, pref in enumerate(na.preferred_during_scheduling_ignored_during_execution):
            at = f"{where}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            errors += _weight(pref.weight, f"{at}.weight") + node_term_errors(pref.preference, f"{at}.preference")
    for field, label in (("pod_affinity", "podAffinity"), ("pod_anti_affinity", "podAntiAffinity")):
        if not affinity.HasField(field):
            continue
        pa, where = getattr(affinity, field), f"{path}.{label}"
        for i, term in enumerate(pa.required_during_scheduling_ignored_during_execution):
            errors += pod_term_errors(term, f"{where}.requiredDuringSchedulingIgnoredDuringExecution[{i}]")
        for i, w in enumerate(pa.preferred_during_scheduling_ignored_during_execution):
            at = f"{where}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            errors += _weight(w.weight, f"{at}.weight") + pod_term_errors(w.pod_affinity_term, f"{at}.podAffinityTerm")
    return errors


def spread_errors(constraints: list[types_pb2.TopologySpreadConstraint], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, c in enumerate(constraints):
        at = f"{path}[{i}]"
        if c.max_skew <= 0:
            errors.append(FieldError(f"{at}.maxSkew", f"Invalid value: {c.max_skew}: must be greater than zero"))
        if not c.topology_key:
            errors.append(FieldError(f"{at}.topologyKey", "Required value: can not be empty"))
        else:
            errors += _key(c.topology_key, f"{at}.topologyKey")
        if c.when_unsatisfiable not in WHEN_UNSATISFIABLE:
            errors.append(FieldError(f"{at}.whenUnsatisfiable", _supported(c.when_unsatisfiable, WHEN_UNSATISFIABLE)))
        if c.HasField("min_domains"):
            if c.min_domains <= 0:
                errors.append(FieldError(f"{at}.minDomains", f"Invalid value: {c.min_domains}: must be greater "
                                                             f"than 0"))
            elif c.when_unsatisfiable != "DoNotSchedule":
                errors.append(FieldError(f"{at}.minDomains", f"Invalid value: {c.min_domains}: can only use "
                                                             f"minDomains if whenUnsatisfiable=DoNotSchedule, not "
                                                             f"{c.when_unsatisfiable}"))
        for name, value in (("nodeAffinityPolicy", c.node_affinity_policy), ("nodeTaintsPolicy", c.node_taints_policy)):
            if value and value not in POLICIES:
                errors.append(FieldError(f"{at}.{name}", _supported(value, POLICIES)))
        if c.HasField("label_selector"):
            errors += labelselector.validate(c.label_selector, f"{at}.labelSelector")
        for j, key in enumerate(c.match_label_keys):
            errors += _key(key, f"{at}.matchLabelKeys[{j}]")
        pair = (c.topology_key, c.when_unsatisfiable)
        if pair in seen:
            errors.append(FieldError(f"{at}", f'Duplicate value: "{{{c.topology_key}, {c.when_unsatisfiable}}}"'))
        seen.add(pair)
    return errors


def validate_scheduling(spec: types_pb2.PodSpec, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if spec.HasField("affinity"):
        errors += affinity_errors(spec.affinity, f"{path}.affinity")
    errors += spread_errors(list(spec.topology_spread_constraints), f"{path}.topologySpreadConstraints")
    if spec.HasField("preemption_policy") and spec.preemption_policy not in PREEMPTION_POLICIES:
        errors.append(FieldError(f"{path}.preemptionPolicy", _supported(spec.preemption_policy, PREEMPTION_POLICIES)))
    if spec.priority_class_name and (problem := dns1123_subdomain_error(spec.priority_class_name)):
        errors.append(FieldError(f"{path}.priorityClassName", invalid_value(spec.priority_class_name, problem)))
    return errors
