import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import VOTE_ROWS
from fer_helpers.labels import (
    CLASSES,
    VOTE_COLUMNS,
    display_names,
    leave_one_out_votes,
    majority_labels,
    plurality_labels,
    vote_distribution,
    vote_entropy,
)

C = {c: i for i, c in enumerate(CLASSES)}


def test_plurality_on_hand_computed_rows():
    got = plurality_labels(np.array(VOTE_ROWS))
    expected = [C["Neutral"], C["Happiness"], C["Surprise"], C["Anger"], C["Neutral"], -1,
                C["Contempt"], C["Disgust"]]
    assert got.tolist() == expected


def test_majority_on_hand_computed_rows():
    got = majority_labels(np.array(VOTE_ROWS))
    # row 0: neutral 6 of (6+2+2)=10 → 6 > 5 ✓; row 2: tie → excluded; row 4: all singles → excluded;
    # row 6: contempt 6 of 10 ✓ (NF 4 does not win); row 7: disgust 8 of 10 ✓
    expected = [C["Neutral"], C["Happiness"], -1, C["Anger"], -1, -1, C["Contempt"], C["Disgust"]]
    assert got.tolist() == expected


def test_majority_needs_strictly_more_than_half():
    assert majority_labels(np.array([[5, 5, 0, 0, 0, 0, 0, 0, 0, 0]])).tolist() == [-1]
    assert majority_labels(np.array([[4, 2, 2, 0, 0, 0, 0, 0, 0, 0]])).tolist() == [-1]   # 4 of 8 is not > half
    assert majority_labels(np.array([[5, 2, 2, 0, 0, 0, 0, 0, 0, 0]])).tolist() == [C["Neutral"]]


def test_distribution_is_in_class_order_and_normalised():
    d = vote_distribution(np.array([[6, 2, 0, 0, 0, 0, 0, 0, 2, 0]]))
    assert d.shape == (1, 8)
    assert d[0, C["Neutral"]] == pytest.approx(0.75) and d[0, C["Happiness"]] == pytest.approx(0.25)
    assert d.sum() == pytest.approx(1.0)


def test_entropy_zero_when_unanimous_and_max_when_uniform():
    e = vote_entropy(np.array([[10, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1] * 10]))
    assert e[0] == 0 and e[1] == pytest.approx(np.log2(10))


def test_display_names_turkish_and_english():
    assert display_names(CLASSES, "tr")[CLASSES.index("Disgust")] == "İğrenme"
    assert display_names(CLASSES, "en") == list(CLASSES)
    with pytest.raises(ValueError, match="language"):
        display_names(CLASSES, "de")


def test_bad_vote_shape_is_refused():
    with pytest.raises(ValueError, match="N×10"):
        plurality_labels(np.zeros((3, 8)))


def test_leave_one_out_on_hand_computed_rows():
    # Row 0: neutral 6, happiness 3, unknown 1. Whoever is left out, the other nine say Neutral.
    # Row 1: a 5-5 split. Leaving out a Neutral vote makes the rest say Happiness, and vice versa,
    # so no annotator agrees with the others: the label itself is a coin toss there.
    votes = np.array([[6, 3, 0, 0, 0, 0, 0, 0, 1, 0],
                      [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]])
    loo = leave_one_out_votes(votes, "plurality")
    got = sorted(zip(loo["row"].tolist(), loo["vote"].tolist(), loo["others"].tolist(), loo["weight"].tolist()))
    assert got == sorted([(0, C["Neutral"], C["Neutral"], 6), (0, C["Happiness"], C["Neutral"], 3),
                          (0, -1, C["Neutral"], 1),
                          (1, C["Neutral"], C["Happiness"], 5), (1, C["Happiness"], C["Neutral"], 5)])
    # Majority rule: leaving out the unknown vote leaves a 4-4 tie, which has no label, so that
    # annotator is left out; leaving out one of the eight leaves a strict 4-3 majority.
    tie = leave_one_out_votes(np.array([[4, 4, 0, 0, 0, 0, 0, 0, 1, 0]]), "majority")
    got = sorted(zip(tie["vote"].tolist(), tie["others"].tolist(), tie["weight"].tolist()))
    assert got == sorted([(C["Neutral"], C["Happiness"], 4), (C["Happiness"], C["Neutral"], 4)])


votes_strategy = arrays(np.int64, st.tuples(st.integers(1, 30), st.just(10)), elements=st.integers(0, 10))


@settings(max_examples=200, deadline=None)
@given(votes_strategy)
def test_vote_label_properties(votes):
    plur, maj = plurality_labels(votes), majority_labels(votes)
    assert plur.shape == maj.shape == (len(votes),)
    assert set(np.unique(plur)) <= set(range(-1, 8)) and set(np.unique(maj)) <= set(range(-1, 8))
    # A majority label, when it exists, is also the plurality label.
    has = maj >= 0
    assert (maj[has] == plur[has]).all()
    dist = vote_distribution(votes)
    emo = votes[:, :8].sum(axis=1) > 0
    assert np.allclose(dist[emo].sum(axis=1), 1.0, atol=1e-5)
    assert (dist[~emo] == 0).all()
    # The plurality label's class holds the largest share of the distribution.
    ok = plur >= 0
    assert (dist[ok, plur[ok]] >= dist[ok].max(axis=1) - 1e-6).all()


@settings(max_examples=200, deadline=None)
@given(votes_strategy, st.sampled_from(["plurality", "majority"]))
def test_leave_one_out_properties(votes, mode):
    loo = leave_one_out_votes(votes, mode)
    assert (loo["others"] >= 0).all() and (loo["weight"] >= 1).all()
    # An emotion vote weighs as many annotators as cast it; no image gives more votes than it has.
    column = {i: VOTE_COLUMNS.index(c.lower()) for i, c in enumerate(CLASSES)}
    for r, v, w in zip(loo["row"], loo["vote"], loo["weight"]):
        if v >= 0:
            assert w == votes[r, column[v]]
    per_image = np.bincount(loo["row"], weights=loo["weight"], minlength=len(votes))
    assert (per_image <= votes.sum(axis=1)).all()
    # A unanimous image: every annotator agrees with the rest (when any rest is left).
    unanimous = (votes[:, :8] == votes.sum(axis=1, keepdims=True)).any(axis=1) & (votes.sum(axis=1) > 1)
    hit = np.isin(loo["row"], np.flatnonzero(unanimous))
    assert (loo["vote"][hit] == loo["others"][hit]).all()
