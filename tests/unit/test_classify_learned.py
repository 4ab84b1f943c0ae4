"""The learned intake classifier (dispatch.intake.learned) and the shipped combination, over the
fixed files: deterministic (the training is, and the sets are)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.classify import measure
from bench.classify_contacts import CORES, LIFE_SAFETY
from bench.classify_heldout import held_out_fresh
from dispatch.cases.registration import CATEGORIES
from dispatch.intake.classify import LEARNED, classify, classify_by_rules, learned_model, life_priority, train
from dispatch.intake.learned import TextClassifier, Vectorizer, ngrams


def test_ngrams_are_taken_within_runs_padded_by_spaces() -> None:
    assert ngrams("Ab，c", 1, 2) == [" ", "a", "b", " ", " a", "ab", "b ", " ", "c", " ", " c", "c "]
    assert ngrams("！！", 1, 3) == []


def test_rows_are_unit_length_and_unknown_ngrams_are_dropped() -> None:
    vectorizer = Vectorizer.fit(["停电了", "电压低"], 2)
    x = vectorizer.transform(["停电了", "天气好", ""]).toarray()
    assert np.allclose(np.linalg.norm(x[0]), 1.0)
    assert set(np.flatnonzero(x[1])) == {vectorizer.vocabulary[" "]}  # only the padding is known
    assert np.allclose(x[2], 0.0)
    # a rarer n-gram weighs more than one both texts share (idf)
    assert x[0, vectorizer.vocabulary["停"]] > x[0, vectorizer.vocabulary["电"]]


@pytest.mark.parametrize("model", ["logistic", "linear_svm", "complement_nb"])
def test_every_model_learns_a_small_set_and_generalises_a_little(model: str) -> None:
    texts = ["家里停电了", "整栋楼停电", "停电好久了", "我要投诉物业", "投诉噪音扰民", "投诉态度差"]
    labels = ["power_fault"] * 3 + ["complaint"] * 3
    fitted = TextClassifier.fit(texts, labels, model=model, c=10.0)  # type: ignore[arg-type]
    assert fitted.predict(texts) == labels
    assert fitted.predict(["村里停电了", "投诉饭店油烟"]) == ["power_fault", "complaint"]


def test_training_is_deterministic() -> None:
    first, second = train(), train()
    assert first.classes == second.classes and first.vectorizer.vocabulary == second.vectorizer.vocabulary
    assert np.array_equal(first.weights, second.weights)
    assert learned_model() is learned_model()  # trained once per process


@pytest.mark.parametrize("text", [
    "老爷子突然晕倒在地上",  # no rule knows 老爷子 with 晕倒
    "老人心口疼得厉害",
    "电梯停在半空中，里面有人",
    "我奶奶在浴室滑倒了，起不来",  # a rule's
])
def test_an_unseen_paraphrase_of_a_danger_goes_to_priority_one(text: str) -> None:
    assert classify(text).priority == 1
    assert life_priority(text) == 1


def test_the_learned_model_finds_dangers_the_rules_miss() -> None:
    found = classify("老爷子突然晕倒在地上")
    assert (found.category, found.priority, found.danger) == ("elderly_emergency", 1, LEARNED)
    assert classify_by_rules("老爷子突然晕倒在地上").priority is None


def test_the_held_out_set_is_fresh_and_covers_every_citizen_category() -> None:
    contacts = held_out_fresh()
    assert len(contacts) >= 150
    assert sum(1 for c in contacts if c.priority == 1) >= 20
    assert {c.category for c in contacts} == set(CATEGORIES) - {"todo"}
    trained = [t for cores in (CORES, LIFE_SAFETY) for texts in cores.values() for t in texts]
    assert not [c.text for c in contacts if any(t in c.text or c.text in t for t in trained)]


def test_the_shipped_classifier_beats_the_rules_on_the_held_out_set() -> None:
    contacts = held_out_fresh()
    rules, shipped = measure(contacts, classify_by_rules), measure(contacts, classify)
    assert isinstance(rules["accuracy"], float) and isinstance(shipped["accuracy"], float)
    assert shipped["accuracy"] >= rules["accuracy"] + 0.25, (rules["accuracy"], shipped["accuracy"])
    assert shipped["accuracy"] >= 0.70
    assert isinstance(rules["life_right"], int) and isinstance(shipped["life_right"], int)
    assert shipped["life_right"] >= rules["life_right"] + 8, (rules["life_right"], shipped["life_right"])
    assert shipped["false_p1"] <= 3  # few ordinary matters jump the queue
