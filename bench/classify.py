"""`python -m bench.classify`: the intake classifiers on the labelled set and the held-out sets.

Three classifiers: the old keyword rules (`classify_by_rules`), the learned model alone
(dispatch.intake.learned, no rule), and the shipped combination (`classify`: the life-safety
rules, then the learned model). For each set: accuracy by category, overall, the share of
life-safety contacts that came out priority 1, and how many ordinary contacts were sent to
priority 1 by mistake; `-v` lists every miss. The labelled set is what the model trains on
(its figures are an upper bound); bench/classify_heldout.py (161 contacts) is never tuned on.

`python -m bench.classify --select`: the model choice, by 5-fold cross-validation on the
labelled set grouped by core matter (the copies of one core are never split between training
and testing), with the time one fit takes.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence

from bench.classify_contacts import LIFE, Contact, held_out, labelled
from bench.classify_heldout import held_out_fresh
from dispatch.cases.registration import DEFAULT_PRIORITY
from dispatch.intake.classify import NGRAMS, C, Classification, classify, classify_by_rules, learned_model
from dispatch.intake.learned import DANGER, Model, TextClassifier

Classifier = Callable[[str], Classification]


def learned_alone(text: str) -> Classification:
    """The learned model with no rule: its category, priority 1 when it predicts a danger."""
    found = learned_model().predict([text])[0]
    return Classification(found.removesuffix(DANGER), LIFE if found.endswith(DANGER) else None)


CLASSIFIERS: dict[str, Classifier] = {
    "old rules": classify_by_rules, "learned model": learned_alone, "shipped (rules + learned)": classify}


def measure(contacts: Sequence[Contact], classifier: Classifier = classify) -> dict[str, object]:
    """Accuracy by category, overall accuracy, life-safety recall, false priority 1s, and the misses."""
    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    misses: list[tuple[str, str, str]] = []
    life_total = life_right = false_p1 = 0
    for contact in contacts:
        got = classifier(contact.text)
        seen[contact.category] += 1
        if got.category == contact.category:
            right[contact.category] += 1
        else:
            misses.append((contact.text, contact.category, got.category))
        priority = got.priority or DEFAULT_PRIORITY[got.category]
        if contact.priority == LIFE:
            life_total += 1
            life_right += priority == LIFE
            if priority != LIFE:
                misses.append((contact.text, "priority 1", f"priority {priority}"))
        elif priority == LIFE:
            false_p1 += 1
            misses.append((contact.text, "not priority 1", "priority 1"))
    return {
        "by_category": {c: right[c] / seen[c] for c in sorted(seen)},
        "accuracy": sum(right.values()) / max(1, sum(seen.values())),
        "life_safety": life_right / max(1, life_total), "life_right": life_right, "life_total": life_total,
        "false_p1": false_p1, "total": len(contacts), "misses": misses,
    }


def report(name: str, contacts: Sequence[Contact], verbose: bool) -> int:
    """Print one set's figures for every classifier, side by side; 1 when the shipped classifier
    missed a life-safety contact of the labelled set."""
    results = {label: measure(contacts, fn) for label, fn in CLASSIFIERS.items()}
    print(f"\n{name}: {len(contacts)} contacts (life-safety: {results['old rules']['life_total']})")
    print("| category | n | " + " | ".join(results) + " |\n|---|---:|" + "---:|" * len(results))
    first: dict[str, float] = results["old rules"]["by_category"]  # type: ignore[assignment]
    for category in first:
        n = sum(1 for c in contacts if c.category == category)
        cells = " | ".join(f"{r['by_category'][category]:.1%}" for r in results.values())  # type: ignore[index]
        print(f"| {category} | {n} | {cells} |")
    print("| **overall** | " + str(len(contacts)) + " | "
          + " | ".join(f"**{r['accuracy']:.1%}**" for r in results.values()) + " |")
    print("| dangers to priority 1 | " + str(results["old rules"]["life_total"]) + " | "
          + " | ".join(f"{r['life_right']}/{r['life_total']}" for r in results.values()) + " |")
    false_p1 = " | ".join(str(r["false_p1"]) for r in results.values())
    print(f"| ordinary sent to priority 1 | | {false_p1} |")
    if verbose:
        for label, result in results.items():
            for text, wanted, got in result["misses"]:  # type: ignore[attr-defined]
                print(f"  {label} miss: {text!r}: wanted {wanted}, got {got}")
    return 0 if results["shipped (rules + learned)"]["life_safety"] == 1.0 else 1


GRID: tuple[tuple[Model, float, int], ...] = (
    *(("logistic", c, high) for c in (1.0, 10.0, 30.0, 100.0) for high in (2, 3)),
    *(("linear_svm", c, high) for c in (0.1, 1.0) for high in (2, 3)),
    *(("complement_nb", c, high) for c in (1.0, 3.0, 10.0) for high in (2, 3)),
)


def select(folds: int = 5) -> None:
    """Grouped cross-validation of every model in `GRID` on the labelled set."""
    contacts = labelled()
    cores = list(dict.fromkeys(c.core for c in contacts))
    fold_of = {core: i % folds for i, core in enumerate(cores)}
    print(f"grouped {folds}-fold cross-validation on the labelled set ({len(contacts)} contacts, "
          f"{len(cores)} core matters)")
    print("| model | C | n-grams | accuracy | dangers found | seconds per fit |")
    print("|---|---:|---|---:|---:|---:|")
    for model, c, high in GRID:
        right = dangers = found = 0
        spent = 0.0
        for fold in range(folds):
            train = [x for x in contacts if fold_of[x.core] != fold]
            test = [x for x in contacts if fold_of[x.core] == fold]
            started = time.perf_counter()
            fitted = TextClassifier.fit([x.text for x in train], [_label(x) for x in train],
                                        model=model, c=c, high=high)
            spent += time.perf_counter() - started
            for x, got in zip(test, fitted.predict([x.text for x in test]), strict=True):
                right += got.removesuffix(DANGER) == x.category
                dangers += x.priority == LIFE
                found += x.priority == LIFE and got.endswith(DANGER)
        print(f"| {model} | {c:g} | 1-{high} | {right / len(contacts):.1%} | {found}/{dangers} "
              f"| {spent / folds:.2f} |")


def _label(contact: Contact) -> str:
    return contact.category + (DANGER if contact.priority == LIFE else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures; exit 1 when a life-safety contact of the labelled set was missed."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--select" in args:
        select()
        return 0
    started = time.perf_counter()
    learned_model()
    print(f"training the shipped model (logistic, C={C:g}, 1-{NGRAMS}-grams) on the labelled set: "
          f"{time.perf_counter() - started:.2f} s")
    verbose = "-v" in args
    code = report("labelled set (the training set: an upper bound)", labelled(), verbose)
    report("first held-out set (45, written after the rules)", held_out(), verbose)
    report("held-out set (bench/classify_heldout.py, never tuned on)", held_out_fresh(), verbose)
    return code


if __name__ == "__main__":
    sys.exit(main())
