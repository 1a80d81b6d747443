"""A gap's test error paired over images, checked against a paired bootstrap on synthetic predictions."""

import numpy as np
import pytest

from simclr.core.correctness import pack, unpack
from simclr.report import readings as R
from simclr.report import statistics as S

N = 4000  # test images


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 10000])
def test_per_image_records_round_trip_in_a_bit_per_image(n):
    bits = np.random.default_rng(n).random(n) < 0.6
    text = pack(bits)
    assert text.startswith(f"{n}:") and len(text) <= len(str(n)) + 1 + 4 * ((n + 7) // 8 + 2) // 3
    assert unpack(text).dtype == bool and np.array_equal(unpack(text), bits)


@pytest.mark.parametrize("text", ["", "12", "x:AAAA", "16:AA==", "3:!!", "-1:"])
def test_a_damaged_record_is_a_value_error(text):
    with pytest.raises(ValueError):
        unpack(text)


def bootstrap_half(a: list[np.ndarray], b: list[np.ndarray], reps: int = 3000) -> float:
    """Half-width (points) of the 95% percentile interval of mean(a) − mean(b) when the test images are
    resampled, the same images for both (a and b: one correctness array per seed)."""
    d = np.mean(a, axis=0) - np.mean(b, axis=0)
    rng = np.random.default_rng(0)
    diffs = 100 * np.stack([d[rng.integers(0, d.size, d.size)].mean() for _ in range(reps)])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return (high - low) / 2


def one_seed(correct: np.ndarray, seed: int = 0) -> S.PerSeed:
    return S.PerSeed({seed: 100 * correct.mean()}, {seed: correct})


def flip(correct: np.ndarray, fraction: float, rng) -> np.ndarray:
    return np.where(rng.random(correct.size) < fraction, ~correct, correct)


def test_models_that_agree_on_most_images_get_the_narrower_interval_the_bootstrap_gives():
    rng = np.random.default_rng(1)
    a = rng.random(N) < 0.70
    b = flip(a, 0.08, rng)  # b is a with 8% of its answers changed
    paired = S.paired_gap(one_seed(a), one_seed(b), N)
    independent = S.paired_gap(100 * a.mean(), 100 * b.mean(), N)  # no per-image record: two binomials
    assert paired.mean == pytest.approx(independent.mean)
    assert paired.half == pytest.approx(bootstrap_half([a], [b]), rel=0.1)
    assert paired.half < 0.5 * independent.half


def test_models_whose_errors_are_anti_correlated_get_the_wider_interval_the_bootstrap_gives():
    rng = np.random.default_rng(2)
    a = rng.random(N) < 0.5
    b = flip(~a, 0.1, rng)  # b is mostly right where a is wrong
    paired = S.paired_gap(one_seed(a), one_seed(b), N)
    independent = S.paired_gap(100 * a.mean(), 100 * b.mean(), N)
    assert paired.half == pytest.approx(bootstrap_half([a], [b]), rel=0.1)
    assert paired.half > 1.2 * independent.half


def test_with_seeds_the_image_error_is_that_of_the_seed_averaged_difference():
    rng = np.random.default_rng(3)
    truth = rng.random(N) < 0.6
    a = [flip(truth, 0.10, rng) for _ in range(3)]
    b = [flip(truth, 0.15, rng) for _ in range(3)]
    sa = S.PerSeed({s: 100 * c.mean() for s, c in enumerate(a)}, dict(enumerate(a)))
    sb = S.PerSeed({s: 100 * c.mean() for s, c in enumerate(b)}, dict(enumerate(b)))
    image_half = S.Z975 * S.paired_test_error(sa, sb, [0, 1, 2], [0, 1, 2], N)
    assert image_half == pytest.approx(bootstrap_half(a, b), rel=0.1)
    gap = S.paired_gap(sa, sb, N)  # and the seed spread of the per-seed differences on top, in quadrature
    spread = S.seed_half_width([sa[s] - sb[s] for s in range(3)])
    assert gap.half == pytest.approx(np.hypot(spread, image_half))
    assert gap.seeds == 3


def test_without_every_record_or_when_asked_the_two_top1s_are_read_as_independent():
    rng = np.random.default_rng(4)
    a, b = rng.random(N) < 0.7, rng.random(N) < 0.6
    independent = S.paired_gap(100 * a.mean(), 100 * b.mean(), N)
    missing = S.PerSeed({0: 100 * a.mean(), 1: 100 * a.mean()}, {0: a})  # seed 1 kept no record
    assert S.paired_gap(missing, S.PerSeed({0: 100 * b.mean(), 1: 100 * b.mean()}, {0: b, 1: b}), N).half == \
        pytest.approx(independent.half)
    other_split = one_seed(b[: N // 2])  # scored on other images: nothing to pair
    assert S.paired_test_error(one_seed(a), other_split, [0], [0], N) is None
    with S.independent_test_errors():
        assert S.paired_gap(one_seed(a), one_seed(b), N).half == pytest.approx(independent.half)
    assert S.paired_gap(one_seed(a), one_seed(b), N).half != pytest.approx(independent.half)


@pytest.mark.parametrize("discordant, verdict", [(4, S.CANNOT_TELL), (5, S.CANNOT_TELL), (6, S.REPRODUCED)])
def test_a_handful_of_discordant_images_decides_no_sooner_than_the_exact_mcnemar_test(discordant, verdict):
    # 1,000 images, b wrong on `discordant` images a gets right and right wherever a is: the exact
    # two-sided McNemar (binomial) test gives p = 0.125, 0.063, 0.031 for 4, 5, 6
    a = np.arange(1000) < 700
    b = a & (np.arange(1000) >= discordant)
    assert S.paired_gap(one_seed(a), one_seed(b), 1000).verdict == verdict


def test_the_pairing_sentence_counts_what_each_reading_decides():
    rng = np.random.default_rng(5)
    a = rng.random(N) < 0.60
    b = np.where(a, rng.random(N) < 0.985, rng.random(N) < 0.01)  # 1 point behind, agreeing on ~98% of images
    le = {"top1_h": 100 * a.mean(), "top1_z": 100 * b.mean(), "correct": {"top1_h": a, "top1_z": b}}
    paired = [R.h_vs_gh_finding(le, "mlp", N)]
    with S.independent_test_errors():
        unpaired = [R.h_vs_gh_finding(le, "mlp", N)]
    assert paired[0].verdict == S.REPRODUCED and unpaired[0].verdict == S.CANNOT_TELL
    text = R.read_pairing(paired, unpaired)
    assert text.startswith("Paired over the test images, 1 of 1 findings are decided")
    assert "independent, 0." in text and "cannot tell → reproduced" in text


@pytest.mark.parametrize("content, says", [
    (None, "does not exist"),
    ("{not json", "is not a per-image record (JSONDecodeError"),
    ('{"top1_h": 50.0}', "is not a per-image record (KeyError"),
    ('{"correct": {"top1_h": "8:!!"}}', "is not a per-image record (ValueError"),
    ('{"correct": {"top1_h": "' + pack(np.ones(7, bool)) + '"}}', "is not a record of the 8 test images"),
])
def test_a_missing_damaged_or_foreign_record_is_one_error_naming_it(tmp_path, content, says):
    from simclr.core.correctness import read_record
    from simclr.core.errors import SimCLRError

    path = tmp_path / "record.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SimCLRError) as err:
        read_record(path, 8, "`dvc repro -f linear_eval`")
    assert str(err.value).startswith(f"{path} {says}") or str(err.value).startswith(f"{path} does not")
    assert says in str(err.value)
    assert content is None or str(err.value).endswith("rerun `dvc repro -f linear_eval`")
