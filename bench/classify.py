"""`python -m bench.classify`: the intake classifier on the labelled set (bench/classify_contacts.py).

Prints accuracy by category, overall, and the share of life-safety contacts that came out
priority 1 (must be all), with every miss listed.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

from bench.classify_contacts import LIFE, Contact, held_out, labelled
from dispatch.cases.registration import DEFAULT_PRIORITY
from dispatch.intake.classify import classify


def measure(contacts: Sequence[Contact]) -> dict[str, object]:
    """Accuracy by category, overall accuracy, life-safety recall, and the misses."""
    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    misses: list[tuple[str, str, str]] = []
    life_total = life_right = 0
    for contact in contacts:
        got = classify(contact.text)
        seen[contact.category] += 1
        if got.category == contact.category:
            right[contact.category] += 1
        else:
            misses.append((contact.text, contact.category, got.category))
        if contact.priority == LIFE:
            life_total += 1
            priority = got.priority or DEFAULT_PRIORITY[got.category]
            life_right += priority == LIFE
            if priority != LIFE:
                misses.append((contact.text, "priority 1", f"priority {priority}"))
    return {
        "by_category": {c: right[c] / seen[c] for c in sorted(seen)},
        "accuracy": sum(right.values()) / max(1, sum(seen.values())),
        "life_safety": life_right / max(1, life_total), "life_total": life_total,
        "total": len(contacts), "misses": misses,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures of both sets; exit 1 when a life-safety contact of the labelled set was missed."""
    code = report("labelled set", labelled())
    report("held-out set (never tuned on)", held_out())
    return code


def report(name: str, contacts: Sequence[Contact]) -> int:
    """Print one set's figures; 1 when a life-safety contact was missed."""
    result = measure(contacts)
    by_category: dict[str, float] = result["by_category"]  # type: ignore[assignment]
    print(f"{name}: {result['total']} contacts (life-safety: {result['life_total']})")
    print("| category | accuracy |\n|---|---:|")
    for category, share in by_category.items():
        print(f"| {category} | {share:.1%} |")
    print(f"overall accuracy: {result['accuracy']:.1%}; "
          f"life-safety to priority 1: {result['life_safety']:.1%}")
    for text, wanted, got in result["misses"]:  # type: ignore[attr-defined]
        print(f"  miss: {text!r}: wanted {wanted}, got {got}")
    return 0 if result["life_safety"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
