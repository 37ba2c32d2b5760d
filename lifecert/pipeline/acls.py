"""The broker's ACLs, from ``acls.toml`` beside this module: what each component's
principal may do on the topics of a layout (one place decides; docs/kafka-security.md).

    from lifecert.pipeline import acls, broker_clients
    with broker_clients.admin_client(bootstrap) as admin:
        acls.apply(admin, layout("demo."))      # idempotent: existing ACLs stay
        acls.prune(admin, layout("demo."))      # grants acls.toml does not make go

Topic names carry the layout's prefix anywhere in front of them, so the ACLs are made per
layout (exact names; groups and the worker's own topics by prefix), when its topics are
made (:func:`lifecert.pipeline.broker_clients.ensure_topics`, `lifecert topics create`).
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from lifecert.pipeline.broker_errors import KafkaUnavailable
from lifecert.pipeline.credentials import ADMIN, COMPONENTS
from lifecert.pipeline.topics import TopicLayout

__all__ = ["Grant", "apply", "grants", "prune", "rules"]

KINDS = ("read", "write", "groups", "describe_groups", "own_topics")
# operations per kind (kafka-python's ACLOperation names)
TOPIC_READ = ("READ", "DESCRIBE")
TOPIC_WRITE = ("WRITE", "DESCRIBE")
TOPIC_ALWAYS = ("DESCRIBE", "DESCRIBE_CONFIGS")
OWN_TOPIC = ("CREATE", "READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS")
GROUP = ("READ", "DESCRIBE")
GROUP_DESCRIBE = ("DESCRIBE",)


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW ``operation`` on a resource to ``User:<principal>`` from any host."""

    principal: str
    resource: str  # TOPIC or GROUP
    name: str
    pattern: str  # LITERAL or PREFIXED
    operation: str

    def describe(self) -> str:
        star = "*" if self.pattern == "PREFIXED" else ""
        return f"User:{self.principal} {self.operation} {self.resource} {self.name}{star}"


@cache
def rules() -> dict[str, dict[str, tuple[str, ...]]]:
    """principal -> kind -> topic roles or name stems, checked against topics.toml."""
    text = (resources.files("lifecert.pipeline") / "acls.toml").read_text(encoding="utf-8")
    data: dict[str, Any] = tomllib.loads(text)
    from lifecert.pipeline.topics import layout

    roles = set(layout("").topics)
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for principal, table in data.get("principals", {}).items():
        if principal not in COMPONENTS or principal == ADMIN:
            raise ValueError(f"acls.toml: unknown principal {principal!r}")
        unknown = set(table) - set(KINDS)
        if unknown:
            raise ValueError(f"acls.toml: principal {principal!r}: unknown keys {unknown}")
        kinds = {kind: tuple(table.get(kind, ())) for kind in KINDS}
        for kind in ("read", "write"):
            bad = [r for r in kinds[kind] if r not in roles]
            if bad:
                raise ValueError(f"acls.toml: {principal}.{kind}: no topic role {bad}")
        out[principal] = kinds
    return out


def grants(layout: TopicLayout) -> list[Grant]:
    """Every ACL of ``layout``, sorted."""
    found: set[Grant] = set()
    prefix = layout.prefix
    for principal, kinds in rules().items():
        def add(resource: str, name: str, pattern: str, ops: tuple[str, ...]) -> None:
            found.update(Grant(principal, resource, name, pattern, op) for op in ops)  # noqa: B023

        for spec in layout.topics.values():
            add("TOPIC", spec.name, "LITERAL", TOPIC_ALWAYS)
        for role in kinds["read"]:
            add("TOPIC", layout[role].name, "LITERAL", TOPIC_READ)
        for role in kinds["write"]:
            add("TOPIC", layout[role].name, "LITERAL", TOPIC_WRITE)
        for stem in kinds["own_topics"]:
            add("TOPIC", prefix + stem, "PREFIXED", OWN_TOPIC)
        for stem in kinds["groups"]:
            add("GROUP", prefix + stem, "PREFIXED", GROUP)
        for stem in kinds["describe_groups"]:
            add("GROUP", prefix + stem, "PREFIXED", GROUP_DESCRIBE)
    return sorted(found)


def _every_acl() -> Any:
    """A filter matching every ACL on the broker."""
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
        ResourceType,
    )

    return ACLFilter(
        principal=None, host=None, operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )


def _binding(grant: Grant) -> Any:
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    return ACL(
        principal=f"User:{grant.principal}", host="*",
        operation=ACLOperation[grant.operation], permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(
            ResourceType[grant.resource], grant.name, ACLResourcePatternType[grant.pattern]
        ),
    )


def apply(admin: Any, layout: TopicLayout, *, timeout: float = 30.0) -> list[Grant]:
    """Create the ACLs of ``layout`` on the broker (a kafka-python admin client logged in
    as admin) and wait until the broker enforces them; ones that exist already stay as
    they are. Returns the grants."""
    wanted = grants(layout)
    bindings = [_binding(g) for g in wanted]
    result = admin.create_acls(bindings)
    failed = result.get("failed") or []
    if failed:
        raise KafkaUnavailable(
            f"the broker refused to create {len(failed)} of {len(wanted)} ACLs for the "
            f"topics of prefix {layout.prefix!r}: {failed[0]!r}. Run it as the admin "
            "principal (a super user)."
        )
    # The controller has them; the broker's authorizer applies them a moment later, and a
    # component started right away would be refused: wait until the broker lists them all.
    deadline = time.monotonic() + timeout
    while True:
        missing = set(bindings) - set(admin.describe_acls(_every_acl())[0])
        if not missing:
            return wanted
        if time.monotonic() > deadline:
            raise KafkaUnavailable(
                f"the broker did not apply {len(missing)} of the {len(wanted)} ACLs of "
                f"prefix {layout.prefix!r} within {timeout:.0f} s"
            )
        time.sleep(0.05)


def revoke(admin: Any, layout: TopicLayout) -> None:
    """Delete the ACLs :func:`apply` created for ``layout`` (a throwaway prefix whose
    topics are being deleted: a test's, a sandbox's)."""
    admin.delete_acls([_binding(g) for g in grants(layout)])


def prune(admin: Any, layout: TopicLayout, *, timeout: float = 30.0) -> list[str]:
    """Delete every ALLOW ACL on the resources of ``layout`` (its topics; the groups and
    topics acls.toml names by prefix) that acls.toml does not grant, whoever it names: the
    file is the one place that decides. DENY ACLs stay (they grant nothing). Waits until
    the broker no longer lists them; returns what was removed, described."""
    from kafka.admin import ACLFilter, ACLPermissionType, ResourcePatternFilter

    wanted = {_binding(g) for g in grants(layout)}
    literal = {spec.name for spec in layout.topics.values()}
    prefixed = {
        layout.prefix + stem
        for kinds in rules().values()
        for kind in ("groups", "describe_groups", "own_topics")
        for stem in kinds[kind]
    }

    def ours(acl: Any) -> bool:
        pattern = acl.resource_pattern
        if acl.permission_type != ACLPermissionType.ALLOW or acl in wanted:
            return False
        if pattern.pattern_type.name == "LITERAL":
            return pattern.resource_type.name == "TOPIC" and pattern.resource_name in literal
        return pattern.pattern_type.name == "PREFIXED" and pattern.resource_name in prefixed

    stray = [acl for acl in admin.describe_acls(_every_acl())[0] if ours(acl)]
    if not stray:
        return []
    filters = [
        ACLFilter(
            principal=acl.principal, host=acl.host, operation=acl.operation,
            permission_type=acl.permission_type,
            resource_pattern=ResourcePatternFilter(
                acl.resource_pattern.resource_type, acl.resource_pattern.resource_name,
                acl.resource_pattern.pattern_type,
            ),
        )
        for acl in stray
    ]
    admin.delete_acls(filters)
    deadline = time.monotonic() + timeout
    while set(stray) & set(admin.describe_acls(_every_acl())[0]):
        if time.monotonic() > deadline:
            raise KafkaUnavailable(
                f"the broker still lists ACLs of prefix {layout.prefix!r} that acls.toml does "
                f"not grant {timeout:.0f} s after deleting them"
            )
        time.sleep(0.05)
    return [
        f"{acl.principal} {acl.operation.name} {acl.resource_pattern.resource_type.name} "
        f"{acl.resource_pattern.resource_name}" for acl in stray
    ]
